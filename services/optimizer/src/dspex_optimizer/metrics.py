"""The optimizer's Prometheus metrics: runs held by this replica by status, runs ended by
status, and the evaluations, LM calls and cost of runs. Labels never carry run ids."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from dspex_kernel import Usage

HELD_STATUSES = ("starting", "running", "paused")


class OptimizerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Gauge(
            "dspex_optimizer_runs",
            "Runs this replica owns now, by status: starting, running, paused.",
            ["status"],
            registry=registry,
        )
        for status in HELD_STATUSES:
            self.runs.labels(status).set(0)
        self.active = Gauge(
            "dspex_optimizer_active_runs",
            "Runs this replica owns now (holding their OptimizeRequested).",
            registry=registry,
        )
        self.ended = Counter(
            "dspex_optimizer_runs_ended",
            "Runs ended by this replica, by terminal status.",
            ["status"],
            registry=registry,
        )
        self.evaluations = Counter(
            "dspex_optimizer_evaluations",
            "Evaluation calls answered for runs (replayed ones not counted again).",
            registry=registry,
        )
        self.lm_calls = Counter(
            "dspex_optimizer_run_lm_calls",
            "LM calls made for runs: their evaluations and the strategies' own calls.",
            registry=registry,
        )
        self.cost = Counter(
            "dspex_optimizer_run_cost_usd",
            "Cost of the LM calls made for runs, in US dollars.",
            registry=registry,
        )

    def moved(self, before: str | None, after: str | None) -> None:
        """A held run changed status (None: not held)."""
        if before is not None:
            self.runs.labels(before).dec()
        else:
            self.active.inc()
        if after is not None:
            self.runs.labels(after).inc()
        else:
            self.active.dec()

    def spent(self, usage: Usage, *, evaluation: bool) -> None:
        if evaluation:
            self.evaluations.inc()
        self.lm_calls.inc(usage.calls)
        self.cost.inc(max(usage.cost_usd, 0.0))
