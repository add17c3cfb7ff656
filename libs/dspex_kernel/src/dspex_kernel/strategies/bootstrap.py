"""``bootstrap``: few-shot demos for every LM stage, built the way DSPy's
BootstrapFewShotWithRandomSearch builds them. A teacher runs on training examples; those
it gets right give one demo per stage from their traces. Labeled training examples give
more. Candidate demo sets (zero-shot, labeled only, bootstrapped, shuffled mixes of random
size) race on the valset and the best full-valset score wins: all are scored on its first
half, the top third there (if at least as good as the baseline) on all of it (``race``
false scores every set on the full valset, as DSPy does). Demos come from the trainset.

Params: ``max_bootstrapped_demos`` (4), ``max_labeled_demos`` (4), ``num_candidate_sets``
(6), ``max_rounds`` (1: extra rounds retry failed examples at a high temperature),
``metric_threshold`` (1.0: a trace counts when its example scores at least this),
``teacher`` (overrides for the teacher, e.g. ``{"module": "chain_of_thought"}``),
``bootstrap_pool`` (traces to collect, default 4 x max_bootstrapped_demos),
``bootstrap_batch`` (training examples per teacher evaluation, 16), ``race`` (true) and
``race_keep`` (1/3: the share of candidate sets that go on to the full valset)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._base import StrategyContext, StrategyParamsError, StrategyResult
from ._common import CallPlan, baseline_of, best_of, temperature_range
from ._demos import Demo, DemoStage, demo_stages, labeled_demo, traced_demos
from ._racing import screen
from ._records import canonical

Trace = tuple[int, dict[str, Demo]]
"""A training example the teacher got right, with its demo for each stage."""


@dataclass(frozen=True, slots=True)
class _Settings:
    max_bootstrapped: int
    max_labeled: int
    num_sets: int
    max_rounds: int
    threshold: float
    teacher: Mapping[str, Any]
    pool: int
    batch: int
    race: bool
    race_keep: float


def _settings(ctx: StrategyContext) -> _Settings:
    max_bootstrapped = ctx.int_param("max_bootstrapped_demos", 4)
    teacher = ctx.param("teacher", None) or {}
    if not isinstance(teacher, Mapping):
        raise StrategyParamsError("parameter 'teacher' must be a mapping of overrides")
    return _Settings(
        max_bootstrapped=max_bootstrapped,
        max_labeled=ctx.int_param("max_labeled_demos", 4),
        num_sets=ctx.int_param("num_candidate_sets", 6),
        max_rounds=ctx.int_param("max_rounds", 1, low=1),
        threshold=ctx.float_param("metric_threshold", 1.0, low=0.0, high=1.0),
        teacher=dict(teacher),
        pool=ctx.int_param("bootstrap_pool", 4 * max_bootstrapped),
        batch=ctx.int_param("bootstrap_batch", 16, low=1),
        race=ctx.bool_param("race", True),
        race_keep=ctx.float_param("race_keep", 1 / 3, low=0.0, high=1.0),
    )


async def bootstrap(ctx: StrategyContext) -> StrategyResult:
    settings = _settings(ctx)
    baseline = await baseline_of(ctx)
    stages = demo_stages(ctx.spec)
    if not stages:
        return best_of(baseline, [], {"candidates": 0, "bootstrapped": 0})
    traces = await _collect(ctx, settings, stages)
    candidates = _candidate_sets(ctx, settings, stages, traces)
    ctx.note(f"bootstrap: {len(traces)} traces kept; scoring {len(candidates)} demo sets")
    if settings.race:
        finalists = await screen(ctx, candidates, baseline, settings.race_keep)
    else:
        scored = await asyncio.gather(*(ctx.evaluate(c) for c in candidates))
        finalists = list(zip(candidates, scored, strict=True))
    pairs = [(c, e.score) for c, e in finalists]
    details = {
        "candidates": len(candidates),
        "bootstrapped": len(traces),
        "finalists": len(finalists),
    }
    return best_of(baseline, pairs, details)


async def _collect(
    ctx: StrategyContext,
    s: _Settings,
    stages: Sequence[DemoStage],
    plan: CallPlan | None = None,
    reserve: tuple[int, int] = (0, 0),
) -> list[Trace]:
    """Run the teacher on the trainset in order, a batch at a time, until ``s.pool``
    examples were answered well enough (or the trainset is used up). With a ``plan``, its
    calls teach the plan their cost, and under a call budget no batch starts that would
    not leave ``reserve`` (examples to evaluate, other LM calls) at that cost."""
    traces: list[Trace] = []
    start = 0
    while len(traces) < s.pool and start < len(ctx.trainset):
        pending = list(range(start, min(start + s.batch, len(ctx.trainset))))
        if plan is not None and not plan.fits(plan.cost(len(pending) + reserve[0]) + reserve[1]):
            ctx.note("bootstrapping demos: the LM-call budget leaves no room for more")
            break
        start += len(pending)
        for round_ in range(s.max_rounds):
            if not pending:
                break
            overrides = {**s.teacher, **_round_settings(ctx, round_)}
            evaluation = await ctx.evaluate(overrides, pending, split="train", want_traces=True)
            if plan is not None:
                plan.seen(evaluation)
            failed = []
            for outcome in evaluation.outcomes:
                demos = None
                if outcome.error is None and outcome.score >= s.threshold:
                    demos = traced_demos(outcome, stages)
                if demos:
                    traces.append((outcome.index, demos))
                else:
                    failed.append(outcome.index)
            pending = failed
        ctx.note(f"bootstrapping demos: {len(traces)} traces kept from {start} examples")
    return sorted(traces, key=lambda t: t[0])[: s.pool]


def _round_settings(ctx: StrategyContext, round_: int) -> dict[str, Any]:
    """Round 0 runs the teacher as configured. Later rounds sample hot, each at its own
    temperature: overrides cannot carry a rollout id, and a new temperature is a new
    request, so neither an LM cache nor a deterministic model repeats the failed answer."""
    if round_ == 0:
        return {}
    low, high = temperature_range(ctx.spec)
    return {"*.temperature": max(low, round(high - 0.05 * (round_ - 1), 4))}


def _candidate_sets(
    ctx: StrategyContext, s: _Settings, stages: Sequence[DemoStage], traces: Sequence[Trace]
) -> list[dict[str, Any]]:
    rng = ctx.rng
    used = {index for index, _ in traces}
    raw = [i for i in range(len(ctx.trainset)) if i not in used]

    def fill(boots: int) -> list[int]:
        return rng.sample(raw, max(0, min(s.max_labeled - boots, len(raw))))

    sets: list[tuple[Sequence[Trace], Sequence[int]]] = [
        ([], []),  # zero-shot
        ([], rng.sample(range(len(ctx.trainset)), min(s.max_labeled, len(ctx.trainset)))),
    ]
    unshuffled = traces[: s.max_bootstrapped]
    sets.append((unshuffled, fill(len(unshuffled))))
    for _ in range(s.num_sets):
        shuffled = list(traces)
        rng.shuffle(shuffled)
        size = rng.randint(1, s.max_bootstrapped) if s.max_bootstrapped else 0
        sets.append((shuffled[:size], fill(min(size, len(shuffled)))))
    return _distinct(ctx, stages, sets)


def _distinct(
    ctx: StrategyContext,
    stages: Sequence[DemoStage],
    sets: Sequence[tuple[Sequence[Trace], Sequence[int]]],
) -> list[dict[str, Any]]:
    """The sets as overrides, leaving out repeats and the program's own demos (the
    baseline already scored those)."""
    baseline_key = canonical({st.path: list(st.current) for st in stages})
    seen = {baseline_key}
    out: list[dict[str, Any]] = []
    for boots, labeled in sets:
        overrides: dict[str, Any] = {}
        for stage in stages:
            demos = [t[1][stage.name] for t in boots if stage.name in t[1]]
            demos += [d for i in labeled if (d := labeled_demo(ctx.trainset[i], stage))]
            overrides[stage.path] = demos[: stage.limit]
        key = canonical(overrides)
        if key not in seen:
            seen.add(key)
            out.append(overrides)
    return out
