"""Process faults: during an optimization run, and while other systems keep publishing
executions, a random service process (registry, kernel, evaluator or optimizer; two
replicas of kernel and evaluator) is SIGKILLed at a random moment and restarted, 20 times.
The run completes with the same result as the same request run without faults; every
evaluation it proposed is scored exactly once; every execution is answered exactly once."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import nats.errors
import pytest
from crash_helpers import (
    EXAMPLE,
    SEED,
    call_counts,
    examples,
    kill,
    outcome,
    restart,
    running,
)
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from dspex_client import DSPExClient
from dspex_client.stack import Stack, StackOptions
from dspex_contracts import DatasetRef, EvaluationSettings, subjects
from dspex_kernel import ProgramSpec
from dspex_simlm.testing import set_config

pytestmark = pytest.mark.e2e

KILLS = 20
KINDS = ("registry", "kernel", "evaluator", "optimizer")
EXECUTIONS = 40
WAIT_S = 300.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    options = StackOptions(
        data_dir=tmp_path_factory.mktemp("chaos"),
        nats_port=0,
        evaluators=2,
        kernels=2,
        ready_timeout_s=90.0,
        stop_timeout_s=15.0,
        log_level="WARNING",
        # No cache: a repeated run does the work again. Short ack waits: a killed
        # replica's messages come back within seconds.
        env={"DSPEX_LM_CACHE": "none", "DSPEX_ACK_WAIT_S": "4"},
    )
    with Stack(options) as running_stack:
        assert running_stack.lm_api_base is not None
        set_config(running_stack.lm_api_base, latency_ms=120)
        yield running_stack


async def start(client: DSPExClient, run_id: str, train: DatasetRef, val: DatasetRef) -> None:
    await client.start_optimization(
        "math_qa",
        train,
        val,
        metric="numeric",
        strategy="random",
        seed=SEED,
        params={"n_candidates": 12},
        evaluation=EvaluationSettings(batch_size=4, concurrency=4),
        run_id=run_id,
    )


async def answers(js: JetStreamContext) -> Counter[str]:
    """How many ExecuteCompleted / ExecuteFailed each request id has in DSPEX_EXEC."""
    config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
    sub = await js.subscribe(
        "dspex.exec.*.v1", stream="DSPEX_EXEC", ordered_consumer=True, config=config
    )
    found: Counter[str] = Counter()
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=5.0)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            if msg.subject in (subjects.EXEC_COMPLETED, subjects.EXEC_FAILED):
                found[json.loads(msg.data)["payload"]["request_id"]] += 1
            if msg.metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return found


def test_twenty_kills_lose_nothing_and_change_nothing(stack: Stack) -> None:
    rng = random.Random(20261126)

    async def go() -> dict[str, Any]:
        spec = ProgramSpec.load(EXAMPLE / "program.yaml").model_dump(mode="json")
        async with DSPExClient(stack.nats_url) as client:
            await client.register_program(spec, source="test")
            train = await client.upload_dataset(examples("train", 0, 16))
            val = await client.upload_dataset(examples("dev", 0, 20))
            started = time.monotonic()
            await start(client, "chaos-reference", train, val)
            reference = (await client.wait_run("chaos-reference", timeout_s=WAIT_S)).payload
            reference_s = time.monotonic() - started
            ref_calls, _ = await call_counts(client.js, "chaos-reference")

            await start(client, "chaos", train, val)
            questions = [r["question"] for r in examples("test", 0, EXECUTIONS)]
            requests: list[str] = []
            killed: Counter[str] = Counter()
            started = time.monotonic()
            for n in range(KILLS):
                # Executions keep arriving from "other systems" while processes die.
                for question in questions[n * 2 : n * 2 + 2]:
                    requests.append(await client.publish_execute("math_qa", {"question": question}))
                await asyncio.sleep(rng.uniform(0.2, 1.5))
                kind = rng.choice(KINDS)
                victim = rng.choice(running(stack, kind))
                kill(victim)
                killed[kind] += 1
                await restart(stack, victim, f"r{n}")
            chaos_s = time.monotonic() - started
            done = (await client.wait_run("chaos", timeout_s=WAIT_S)).payload
            for request_id in requests:
                await client.wait_answer(request_id, timeout_s=WAIT_S)
            proposed, scored = await call_counts(client.js, "chaos")
            answered = await answers(client.js)
        return {
            "reference": reference,
            "reference_s": reference_s,
            "ref_calls": ref_calls,
            "done": done,
            "chaos_s": chaos_s,
            "killed": killed,
            "proposed": proposed,
            "scored": scored,
            "requests": requests,
            "answered": answered,
        }

    r = asyncio.run(go())
    scored: Counter[str] = r["scored"]
    answered: Counter[str] = r["answered"]
    print(
        f"\n{KILLS} kills {dict(r['killed'])} over {r['chaos_s']:.0f} s; reference run "
        f"{r['reference_s']:.0f} s, {len(r['ref_calls'])} evaluation calls; the run under "
        f"faults: {len(r['proposed'])} proposed, {sum(scored.values())} scored; "
        f"{len(r['requests'])} executions, {sum(answered[q] for q in r['requests'])} answers"
    )
    assert outcome(r["done"]) == outcome(r["reference"])
    assert set(scored) == r["proposed"]
    assert {call: n for call, n in scored.items() if n != 1} == {}
    assert len(r["proposed"]) == len(r["ref_calls"])
    assert {q: answered[q] for q in r["requests"] if answered[q] != 1} == {}
