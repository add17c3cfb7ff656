"""Helpers the strategies share: the baseline, choosing the best scored candidate, planning
evaluations under a call budget, and the range of sampling temperatures a program allows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..program import ProgramSpec
from ..variables import FloatVar
from ._base import Evaluation, StrategyContext, StrategyResult


async def baseline_of(ctx: StrategyContext) -> Evaluation:
    """The baseline the runner measured, or (outside a runner) a fresh measurement."""
    return ctx.baseline if ctx.baseline is not None else await ctx.evaluate({})


def best_of(
    baseline: Evaluation,
    scored: Sequence[tuple[Mapping[str, Any], float]],
    details: Mapping[str, Any] | None = None,
) -> StrategyResult:
    """The highest full-valset score; ties go to the earlier candidate, and the baseline
    (no overrides) comes before every candidate."""
    best: tuple[Mapping[str, Any], float] = ({}, baseline.score)
    for overrides, score in scored:
        if score > best[1]:
            best = (overrides, score)
    return StrategyResult(dict(best[0]), best[1], dict(details or {}))


class CallPlan:
    """What evaluations cost under a ``max_lm_calls`` budget: the most LM calls per example
    seen (a program's stages and retries), starting from the baseline's if given, against
    the calls left. Read it only between calls (no call in flight), so that a replay, which
    answers the same evaluations with the same usage, decides alike."""

    def __init__(self, ctx: StrategyContext, baseline: Evaluation | None = None) -> None:
        self.ctx, self.per_example = ctx, 1.0
        if baseline is not None:
            self.seen(baseline)

    def seen(self, evaluation: Evaluation) -> Evaluation:
        """Learn from an evaluation's usage (of the examples it sent); returns it."""
        sent = len(evaluation.outcomes) - evaluation.reused
        if sent > 0:
            self.per_example = max(self.per_example, evaluation.usage.calls / sent)
        return evaluation

    def cost(self, examples: float) -> float:
        return self.per_example * examples

    def fits(self, calls: float) -> bool:
        """Whether ``calls`` more LM calls fit (always, without a call budget)."""
        left = self.ctx.calls_left()
        return left is None or left >= calls


def temperature_range(spec: ProgramSpec) -> tuple[float, float]:
    """Where a strategy may sample hot: [0, 1], within the program's ``*.temperature``
    variable if it has one."""
    low, high = 0.0, 1.0
    for var in spec.variables.variables:
        if isinstance(var, FloatVar) and var.target == "*.temperature":
            low, high = var.low, min(var.high, 1.0)
    return low, high
