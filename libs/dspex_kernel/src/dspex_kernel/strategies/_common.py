"""Helpers the strategies share: the baseline, and choosing the best scored candidate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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
