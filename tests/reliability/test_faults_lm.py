"""LM faults on the real stack: the simulated LM answers 20% of requests with a 429 (with
Retry-After), a 500, a timeout or a malformed reply. Runs complete, retryable faults are
retried with back-off, examples that still fail are scored 0 with their error (the candidate
is scored, not crashed), and an LM-call budget still holds."""

from __future__ import annotations

import asyncio
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crash_helpers import examples, run_events
from prometheus_client.parser import text_string_to_metric_families

from dspex_client import DSPExClient
from dspex_client.stack import Stack, StackOptions
from dspex_contracts import Budget, EvaluationSettings, RunCompletedPayload, subjects
from dspex_kernel import ProgramSpec
from dspex_simlm.testing import get_stats, reset_stats, set_config

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "math_qa"
FAULT_KINDS = ["429", "500", "timeout", "malformed"]
# A timed-out attempt is abandoned by the client after LM_TIMEOUT_S; the simulated LM would
# answer only after SIM_TIMEOUT_S.
LM_TIMEOUT_S = 1.0
SIM_TIMEOUT_S = 2.0
EVALUATION = EvaluationSettings(batch_size=4, concurrency=4)
WAIT_S = 90.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """NATS, the simulated LM, registry, kernel, two evaluators and one optimizer; no LM
    cache, so that every LM call reaches the simulated LM and its faults."""
    options = StackOptions(
        data_dir=tmp_path_factory.mktemp("dspex-lm-faults"),
        nats_port=0,
        evaluators=2,
        ready_timeout_s=90.0,
        stop_timeout_s=15.0,
        log_level="WARNING",
        env={"DSPEX_LM_CACHE": "none", "DSPEX_LM_TIMEOUT_S": str(LM_TIMEOUT_S)},
    )
    with Stack(options) as running:
        yield running


def faults(stack: Stack, rate: float, kinds: list[str], seed: int) -> None:
    assert stack.lm_api_base is not None
    set_config(
        stack.lm_api_base,
        latency_ms=0,
        fault_rate=rate,
        fault_kinds=kinds,
        retry_after_s=0.2,
        timeout_s=SIM_TIMEOUT_S,
        seed=seed,
    )
    reset_stats(stack.lm_api_base)


def lm_metrics(stack: Stack) -> tuple[float, Counter[str]]:
    """LM calls and LM errors by code over every service's /metrics."""
    calls, errors = 0.0, Counter[str]()
    for child in stack.services:
        if child.url is None or child.kind not in ("kernel", "evaluator", "optimizer"):
            continue
        with urllib.request.urlopen(f"{child.url}/metrics", timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "dspex_lm_calls_total":
                    calls += sample.value
                elif sample.name == "dspex_lm_errors_total":
                    errors[sample.labels["code"]] += int(sample.value)
    return calls, errors


async def optimize(
    stack: Stack, run_id: str, params: dict[str, Any], budget: Budget | None = None
) -> tuple[RunCompletedPayload, list[dict[str, Any]]]:
    spec = ProgramSpec.load(EXAMPLE / "program.yaml").model_dump(mode="json")
    async with DSPExClient(stack.nats_url) as client:
        await client.register_program(spec, source="test")
        await client.start_optimization(
            "math_qa",
            examples("train", 0, 8),
            examples("dev", 0, 16),
            metric="numeric",
            strategy="random",
            seed=3,
            params=params,
            budget=budget,
            evaluation=EVALUATION,
            run_id=run_id,
        )
        done = await client.wait_run(run_id, timeout_s=WAIT_S)
        scored = await run_events(client.js, subjects.CANDIDATE_SCORED, run_id)
        return done.payload, [e["payload"] for e in scored]


def failed_examples(scored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for event in scored for r in event["results"] if r["error"] is not None]


def test_run_completes_and_retries_under_faults(stack: Stack) -> None:
    assert stack.lm_api_base is not None
    faults(stack, 0.2, FAULT_KINDS, seed=11)
    calls_before, errors_before = lm_metrics(stack)
    done, scored = asyncio.run(optimize(stack, "lm-faults", {"n_candidates": 5}))
    sim = get_stats(stack.lm_api_base)
    calls_after, errors_after = lm_metrics(stack)
    calls = calls_after - calls_before
    errors = errors_after - errors_before
    # One simulated request per attempt: the attempts beyond one per call are retries.
    retries = sim["requests_total"] - calls
    failed = failed_examples(scored)
    print(
        f"\nLM faults: {sim['faults_injected']} injected of {sim['requests_total']} requests; "
        f"{calls:.0f} LM calls, {retries:.0f} retries, errors after retries {dict(errors)}; "
        f"run usage {done.usage.calls} calls; {len(failed)} failed examples "
        f"({Counter(r['error']['code'] for r in failed)}); "
        f"outcome {done.status.value}/{done.stop_reason}, best {done.best_score}, "
        f"baseline {done.baseline_score}, wall {done.wall_s:.1f} s"
    )
    assert (done.status.value, done.stop_reason) == ("completed", "finished"), done
    assert set(sim["faults_injected"]) == set(FAULT_KINDS)
    assert all(n > 0 for n in sim["faults_injected"].values()), sim["faults_injected"]
    assert retries > 0
    # Every retryable fault led to a retry, unless it was the last attempt of a failed call.
    retryable = sum(sim["faults_injected"][k] for k in ("429", "500", "timeout"))
    assert retries + sum(errors.values()) >= retryable
    # The whole run was scored: 6 candidates on 16 examples, every example accounted for.
    assert sum(len(e["results"]) for e in scored) == 6 * 16
    assert all(e["error"] is None for e in scored)
    assert all(r["score"] == 0 for r in failed)


def test_failing_examples_are_scored_as_failed(stack: Stack) -> None:
    assert stack.lm_api_base is not None
    # Half the replies malformed: an example fails when its chat reply and the JSON retry
    # both are, a quarter of them.
    faults(stack, 0.5, ["malformed"], seed=5)
    done, scored = asyncio.run(optimize(stack, "lm-malformed", {"n_candidates": 2}))
    failed = failed_examples(scored)
    codes = Counter(r["error"]["code"] for r in failed)
    total = sum(len(e["results"]) for e in scored)
    print(
        f"\nmalformed replies: {len(failed)} of {total} examples failed {dict(codes)}; "
        f"candidate scores {[round(e['score'], 3) for e in scored]}; "
        f"outcome {done.status.value}/{done.stop_reason}"
    )
    assert (done.status.value, done.stop_reason) == ("completed", "finished"), done
    assert total == 3 * 16
    assert failed, "no example failed: the fault injection did not reach the evaluators"
    assert all(r["score"] == 0 and r["outputs"] == {} for r in failed)
    # Each candidate is scored (no whole-call error): its failed examples count 0.
    assert all(e["error"] is None for e in scored)
    for event in scored:
        mean = sum(r["score"] for r in event["results"]) / len(event["results"])
        assert event["score"] == pytest.approx(mean)


def test_lm_call_budget_holds_under_faults(stack: Stack) -> None:
    assert stack.lm_api_base is not None
    faults(stack, 0.2, FAULT_KINDS, seed=13)
    limit = 20
    # Baseline: 16 calls (under the limit), then 5 minibatch evaluations of 4 examples are
    # admitted together (36 calls): the leader's full evaluation is refused. The runner checks
    # the budget before each call, so the calls admitted together may all cross it: at most
    # the 5 x 4 examples (and one JSON retry each) in flight.
    params = {"n_candidates": 5, "minibatch": 4}
    slack = 5 * 4 * 2
    done, _ = asyncio.run(optimize(stack, "lm-budget", params, Budget(max_lm_calls=limit)))
    sim = get_stats(stack.lm_api_base)
    print(
        f"\nbudget under faults: limit {limit}, run usage {done.usage.calls} calls "
        f"(slack allowed {slack}), {sim['requests_total']} requests to the LM, faults "
        f"{sim['faults_injected']}; outcome {done.status.value}/{done.stop_reason}"
    )
    assert (done.status.value, done.stop_reason) == ("budget_exhausted", "max_lm_calls")
    assert limit <= done.usage.calls <= limit + slack
