"""Crashes on the real stack: a SIGKILLed optimizer or evaluator replica loses nothing. A run
interrupted that way ends exactly as the same request run without interruption, and every
evaluation call it proposed is scored exactly once; a wall-clock budget stops a slow run."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from crash_helpers import (
    EXAMPLE,
    call_counts,
    examples,
    kill,
    outcome,
    restart,
    running,
    start_run,
    wait_scored,
    write_jsonl,
)
from typer.testing import CliRunner

from dspex_client import DSPExClient
from dspex_client.cli import app
from dspex_client.stack import Stack
from dspex_contracts import DatasetRef, RunCompleted, RunCompletedPayload
from dspex_kernel import ProgramSpec
from dspex_simlm.testing import set_config

pytestmark = pytest.mark.e2e

# Slow enough LM calls that a run lasts seconds: there is a "mid-run" to crash in.
LATENCY_MS = 250
WAIT_S = 120.0


@dataclass(frozen=True)
class Reference:
    """The uninterrupted run every crashed run must reproduce."""

    train: DatasetRef
    val: DatasetRef
    completed: RunCompletedPayload
    calls: int


@pytest.fixture(scope="module")
def reference(crash_stack: Stack) -> Reference:
    assert crash_stack.lm_api_base is not None
    set_config(crash_stack.lm_api_base, latency_ms=LATENCY_MS)

    async def go() -> Reference:
        spec = ProgramSpec.load(EXAMPLE / "program.yaml").model_dump(mode="json")
        async with DSPExClient(crash_stack.nats_url) as client:
            await client.register_program(spec, source="test")
            train = await client.upload_dataset(examples("train", 0, 24))
            val = await client.upload_dataset(examples("dev", 0, 24))
            run_id = await start_run(client, "crash-reference", train, val)
            done = await client.wait_run(run_id, timeout_s=WAIT_S)
            proposed, scored = await call_counts(client.js, run_id)
        assert done.payload.status.value == "completed", done.payload
        assert set(scored) == proposed
        assert set(scored.values()) == {1}
        print(f"\nreference: {len(proposed)} calls, {outcome(done.payload)}")
        return Reference(train, val, done.payload, len(proposed))

    return asyncio.run(go())


def check_replay(
    ref: Reference, done: RunCompletedPayload, calls: tuple[set[str], Counter[str]]
) -> None:
    proposed, scored = calls
    total = sum(scored.values())
    print(f"\nafter the crash: {len(proposed)} calls proposed, {total} scored, {outcome(done)}")
    assert outcome(done) == outcome(ref.completed)
    assert {call: n for call, n in scored.items() if n != 1} == {}
    assert set(scored) == proposed
    assert len(proposed) == ref.calls


def test_optimizer_sigkill_replays_to_the_same_result(
    crash_stack: Stack, reference: Reference
) -> None:
    async def go() -> tuple[RunCompleted, datetime, tuple[set[str], Counter[str]]]:
        async with DSPExClient(crash_stack.nats_url) as client:
            run_id = await start_run(client, "crash-optimizer", reference.train, reference.val)
            await wait_scored(client.js, run_id, 2, timeout_s=60)
            [optimizer] = running(crash_stack, "optimizer")
            kill(optimizer)
            killed_at = datetime.now(UTC)
            await restart(crash_stack, optimizer, "restarted")
            done = await client.wait_run(run_id, timeout_s=WAIT_S)
            return done, killed_at, await call_counts(client.js, run_id)

    done, killed_at, calls = asyncio.run(go())
    # Completed after the kill: the restarted replica finished it, not the killed one.
    assert done.occurred_at > killed_at
    check_replay(reference, done.payload, calls)


def test_evaluator_sigkill_loses_nothing(crash_stack: Stack, reference: Reference) -> None:
    async def go() -> tuple[RunCompleted, datetime, tuple[set[str], Counter[str]]]:
        async with DSPExClient(crash_stack.nats_url) as client:
            run_id = await start_run(client, "crash-evaluator", reference.train, reference.val)
            await wait_scored(client.js, run_id, 2, timeout_s=60)
            victim = running(crash_stack, "evaluator")[0]
            kill(victim)
            killed_at = datetime.now(UTC)
            await restart(crash_stack, victim, "restarted")
            done = await client.wait_run(run_id, timeout_s=WAIT_S)
            return done, killed_at, await call_counts(client.js, run_id)

    done, killed_at, calls = asyncio.run(go())
    assert done.occurred_at > killed_at
    check_replay(reference, done.payload, calls)


def test_cli_max_wall_budget(crash_stack: Stack, reference: Reference, tmp_path: Path) -> None:
    assert crash_stack.lm_api_base is not None
    # Each LM call outlasts the budget: the baseline alone cannot end within 3 s.
    set_config(crash_stack.lm_api_base, latency_ms=4000)
    try:
        train = write_jsonl(tmp_path / "train.jsonl", examples("train", 40, 8))
        val = write_jsonl(tmp_path / "val.jsonl", examples("dev", 40, 4))
        args = ["optimize", "math_qa", "--metric", "numeric", "--strategy", "random"]
        args += ["--trainset", str(train), "--valset", str(val), "--run-id", "crash-wall"]
        args += ["--max-wall", "3", "--watch", "--timeout", str(WAIT_S)]
        result = CliRunner().invoke(app, args, env={"DSPEX_NATS_URL": crash_stack.nats_url})
    finally:
        set_config(crash_stack.lm_api_base, latency_ms=LATENCY_MS)
    assert result.exit_code == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"\nmax wall: {summary}")
    assert summary["status"] == "budget_exhausted"

    async def completed() -> RunCompleted:
        async with DSPExClient(crash_stack.nats_url) as client:
            return await client.wait_run("crash-wall", timeout_s=30)

    done = asyncio.run(completed()).payload
    assert (done.status.value, done.stop_reason) == ("budget_exhausted", "max_wall_s")
    assert done.wall_s >= 3.0
