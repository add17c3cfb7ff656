"""The optimizer's gauges of held runs: aggregates over the runs a replica owns (no run ids
as labels), and runs ended by status and reason with their best scores."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from dspex_kernel import Usage
from dspex_kernel.optimize import RunState
from dspex_optimizer.metrics import OptimizerMetrics
from dspex_optimizer.reporting import RunGauges

pytestmark = pytest.mark.unit


def test_active_runs_are_summed_and_maxed_and_ended_runs_counted() -> None:
    registry = CollectorRegistry()
    metrics = OptimizerMetrics(registry)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("dspex_optimizer_active_run_lm_calls") == 0
    assert value("dspex_optimizer_active_run_best_score") is None
    first, second = RunGauges(metrics), RunGauges(metrics)
    first.move("starting")
    second.move("starting")
    first.move("running")
    first.progressed(RunState(usage=Usage(calls=10, cost_usd=0.5), best_score=0.4))
    second.progressed(RunState(usage=Usage(calls=3, cost_usd=0.25), best_score=0.7))
    assert value("dspex_optimizer_active_runs") == 2
    assert value("dspex_optimizer_runs", status="running") == 1
    assert value("dspex_optimizer_active_run_lm_calls") == 13
    assert value("dspex_optimizer_active_run_cost_usd") == 0.75
    assert value("dspex_optimizer_active_run_best_score") == 0.7

    second.ended("completed", "finished", 0.7)
    second.move(None)
    assert value("dspex_optimizer_active_run_lm_calls") == 10
    assert value("dspex_optimizer_active_run_best_score") == 0.4
    assert value("dspex_optimizer_runs_ended_total", status="completed", reason="finished") == 1
    assert value("dspex_optimizer_run_best_score_count") == 1
    assert value("dspex_optimizer_run_best_score_bucket", le="0.7") == 1
    assert value("dspex_optimizer_run_best_score_bucket", le="0.6") == 0

    first.ended("failed", None, None)
    first.move(None)
    assert value("dspex_optimizer_runs_ended_total", status="failed", reason="unknown") == 1
    assert value("dspex_optimizer_run_best_score_count") == 1
    assert value("dspex_optimizer_active_runs") == 0
    assert value("dspex_optimizer_active_run_cost_usd") == 0
    assert b"run_id" not in generate_latest(registry)
