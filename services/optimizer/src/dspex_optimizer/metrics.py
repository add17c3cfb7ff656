"""The optimizer's Prometheus metrics: runs held by this replica by status, what those runs
have spent and found so far (summed or maxed over them), runs ended by status and reason
with their best scores, and the evaluations, LM calls and cost of runs. Labels never carry
run ids."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dspex_kernel import Usage

HELD_STATUSES = ("starting", "running", "paused")

# Scores are in [0, 1].
SCORE_BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass(eq=False)
class HeldRun:
    """What one held run has spent and found so far, replayed calls included."""

    lm_calls: int = 0
    cost_usd: float = 0.0
    best_score: float | None = None


class _ActiveRuns(Collector):
    """Aggregates over the held runs, computed at scrape time: one series each, whatever
    the number of runs."""

    def __init__(self) -> None:
        self.held: set[HeldRun] = set()

    def collect(self) -> Iterator[Metric]:
        runs = list(self.held)
        yield GaugeMetricFamily(
            "dspex_optimizer_active_run_lm_calls",
            "LM calls made so far by the runs this replica owns now, summed over them.",
            value=sum(r.lm_calls for r in runs),
        )
        yield GaugeMetricFamily(
            "dspex_optimizer_active_run_cost_usd",
            "Cost so far of the runs this replica owns now, summed over them, in US dollars.",
            value=sum(r.cost_usd for r in runs),
        )
        scores = [r.best_score for r in runs if r.best_score is not None]
        best = GaugeMetricFamily(
            "dspex_optimizer_active_run_best_score",
            "Best score found so far by any run this replica owns now (no sample without one).",
        )
        if scores:
            best.add_metric([], max(scores))
        yield best


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
        self._active_runs = _ActiveRuns()
        registry.register(self._active_runs)
        self.ended = Counter(
            "dspex_optimizer_runs_ended",
            "Runs ended by this replica, by terminal status and stop reason.",
            ["status", "reason"],
            registry=registry,
        )
        self.best_scores = Histogram(
            "dspex_optimizer_run_best_score",
            "Best score of each run ended by this replica (runs that found none not counted).",
            buckets=SCORE_BUCKETS,
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

    def hold(self) -> HeldRun:
        """Start counting a newly held run in the active-run aggregates."""
        run = HeldRun()
        self._active_runs.held.add(run)
        return run

    def release(self, run: HeldRun) -> None:
        self._active_runs.held.discard(run)

    def spent(self, usage: Usage, *, evaluation: bool) -> None:
        if evaluation:
            self.evaluations.inc()
        self.lm_calls.inc(usage.calls)
        self.cost.inc(max(usage.cost_usd, 0.0))

    def run_ended(self, status: str, reason: str | None, best_score: float | None) -> None:
        self.ended.labels(status, reason or "unknown").inc()
        if best_score is not None:
            self.best_scores.observe(best_score)
