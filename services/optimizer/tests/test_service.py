"""The optimizer service in-process on a real nats-server, with a fake evaluator replica
on the bus: a run completes, pauses and resumes, is cancelled, stops at its budget, and
reports its progress and metrics."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import pytest
from optimizer_helpers import (
    BusEvaluator,
    Replica,
    RunWatcher,
    eventually,
    optimizer_settings,
    request,
    start_replica,
    stream_events,
)

from dspex_contracts import (
    Budget,
    CancelRun,
    CancelRunPayload,
    PauseRun,
    PauseRunPayload,
    ResumeRun,
    ResumeRunPayload,
    subjects,
)
from dspex_runtime.testing.nats import NatsServer

pytestmark = pytest.mark.integration


async def test_a_run_completes_over_the_bus(
    replica: Replica, watcher: RunWatcher, evaluator: BusEvaluator
) -> None:
    await watcher.send(request("bus-1", batch_size=5))
    done = await watcher.completion("bus-1")
    p = done.payload
    assert (p.status, p.stop_reason) == ("completed", "finished")
    assert p.best_score is not None
    assert p.baseline_score is not None
    assert p.best_score >= p.baseline_score
    assert p.best_assignment
    scored = await stream_events(watcher.js, subjects.CANDIDATE_SCORED)
    per_call = Counter(e["payload"]["call_id"] for e in scored)
    proposed = {e.id for e in evaluator.proposals}
    assert set(per_call) == proposed
    assert set(per_call.values()) == {1}
    assert len(proposed) == 3 * p.evaluations  # 12 examples in batches of 5
    progress = watcher.progress_of("bus-1")
    assert progress[0].payload.message == "started"
    await eventually(lambda: len(watcher.progress_of("bus-1")) > p.evaluations, "progress")
    assert max(x.payload.evaluations for x in progress) == p.evaluations
    async with aiohttp.ClientSession() as http, http.get(f"{replica.base_url}/metrics") as r:
        text = await r.text()
    assert f"dspex_optimizer_evaluations_total {float(p.evaluations)}" in text
    assert 'dspex_optimizer_runs_ended_total{reason="finished",status="completed"} 1.0' in text
    assert "dspex_optimizer_run_best_score_count 1.0" in text
    assert "dspex_optimizer_active_run_lm_calls 0.0" in text
    assert "dspex_optimizer_active_runs 0.0" in text
    assert replica.optimizer.runs.running == 0


async def test_a_paused_run_proposes_nothing_until_resumed(
    watcher: RunWatcher, evaluator: BusEvaluator
) -> None:
    evaluator.delay_s = 0.2
    await watcher.send(request("bus-2", concurrency=1))
    await eventually(lambda: len(evaluator.proposals) >= 3, "some proposals")
    await watcher.send(PauseRun.create(PauseRunPayload(run_id="bus-2")))

    def paused() -> bool:
        return any(p.payload.status == "paused" for p in watcher.progress_of("bus-2"))

    await eventually(paused, "a paused report")
    count = len(evaluator.proposals)
    await asyncio.sleep(1.0)  # time enough for a proposal to go out if one could
    assert len(evaluator.proposals) == count
    await watcher.send(ResumeRun.create(ResumeRunPayload(run_id="bus-2")))
    done = await watcher.completion("bus-2")
    assert done.payload.status == "completed"
    assert len(evaluator.proposals) > count
    assert watcher.progress_of("bus-2")[-1].payload.status == "running"


async def test_a_cancelled_run_completes_cancelled(
    watcher: RunWatcher, evaluator: BusEvaluator
) -> None:
    evaluator.delay_s = 0.2
    await watcher.send(request("bus-3", concurrency=1))
    await eventually(lambda: len(evaluator.proposals) >= 2, "some proposals")
    await watcher.send(CancelRun.create(CancelRunPayload(run_id="bus-3")))
    done = await watcher.completion("bus-3")
    assert (done.payload.status, done.payload.stop_reason) == ("cancelled", "cancelled")
    assert done.payload.baseline_score is not None
    assert done.id == "bus-3:completed"


async def test_a_run_stops_at_its_lm_call_budget(
    watcher: RunWatcher, evaluator: BusEvaluator
) -> None:
    params = {"n_candidates": 6, "minibatch": 4}
    await watcher.send(request("bus-4", budget=Budget(max_lm_calls=30), params=params))
    done = await watcher.completion("bus-4")
    assert (done.payload.status, done.payload.stop_reason) == ("budget_exhausted", "max_lm_calls")
    assert done.payload.usage.calls >= 30


async def test_a_stopping_replica_hands_its_run_to_another(
    nats_server: NatsServer, replica: Replica, watcher: RunWatcher, evaluator: BusEvaluator
) -> None:
    evaluator.delay_s = 0.2
    await watcher.send(request("bus-5", concurrency=1))
    await eventually(lambda: replica.optimizer.runs.running == 1, "the run to be owned")
    await eventually(lambda: len(evaluator.proposals) >= 3, "some proposals")
    await replica.stop()  # SIGTERM-like: the run's message is handed back, not acked
    assert watcher.completed == []
    successor = await start_replica(optimizer_settings(nats_server))
    try:
        done = await watcher.completion("bus-5")
    finally:
        await successor.stop()
    assert done.payload.status == "completed"
    assert len({p.id for p in evaluator.proposals}) == done.payload.evaluations
