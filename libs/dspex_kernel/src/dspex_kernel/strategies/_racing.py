"""Racing on the valset: a candidate is scored on the first half of the valset before it
earns a full evaluation, and goes on only if it does well enough there against programs
already scored on the same examples. The runner answers the second pass over that half
from the first (no example is evaluated twice for a candidate in a run): a finalist costs
one valset of calls, a candidate stopped early half of one. Full scores stay full-valset
scores, comparable with the baseline."""

from __future__ import annotations

import asyncio
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from ._base import Evaluation, StrategyContext


def first_half(ctx: StrategyContext) -> list[int] | None:
    """The screening examples, or None when the valset is too small to split."""
    n = len(ctx.valset)
    return list(range(n // 2)) if n >= 4 else None


def half_score(evaluation: Evaluation, half: Sequence[int]) -> float:
    """``evaluation``'s total score on ``half`` (it must cover those examples)."""
    scores = {o.index: o.score for o in evaluation.outcomes}
    return sum(scores[i] for i in half)


async def challenge(
    ctx: StrategyContext, overrides: Mapping[str, Any], incumbent: Evaluation
) -> tuple[Evaluation, bool]:
    """Race ``overrides`` against ``incumbent`` (a full-valset evaluation): scored on the
    first half, it goes on to the full valset unless it is clearly worse there.
    Returns the last evaluation made and whether it covers the full valset."""
    half = first_half(ctx)
    if half is None:
        return await ctx.evaluate(overrides), True
    trial = await ctx.evaluate(overrides, half)
    if clearly_worse(trial, incumbent, half):
        return trial, False
    return await ctx.evaluate(overrides), True


def clearly_worse(trial: Evaluation, incumbent: Evaluation, half: Sequence[int]) -> bool:
    """Whether ``trial`` trails ``incumbent`` on ``half`` by more than one standard error
    of the paired per-example differences. The incumbent is the best of several noisy
    scores, so its lead is partly luck: one standard error of slack keeps a challenger
    that is as good from being stopped by that luck."""
    diffs = paired_differences(trial, incumbent, half)
    mean = statistics.fmean(diffs)
    error = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else 0.0
    return mean < -error


def paired_differences(
    trial: Evaluation, reference: Evaluation, indices: Sequence[int]
) -> list[float]:
    """``trial``'s score minus ``reference``'s on each of ``indices`` (both must cover
    them)."""
    mine = {o.index: o.score for o in trial.outcomes}
    theirs = {o.index: o.score for o in reference.outcomes}
    return [mine[i] - theirs[i] for i in indices]


async def screen(
    ctx: StrategyContext,
    candidates: Sequence[Mapping[str, Any]],
    baseline: Evaluation,
    keep_fraction: float,
) -> list[tuple[Mapping[str, Any], Evaluation]]:
    """Full-valset evaluations of the candidates that survive screening: all are scored on
    the first half at once; those among the top ``keep_fraction`` there (ties kept, at
    least one) that also reach the baseline's score on it go on to the full valset."""
    half = first_half(ctx)
    if half is None or not candidates:
        full = await asyncio.gather(*(ctx.evaluate(c) for c in candidates))
        return list(zip(candidates, full, strict=True))
    trials = await asyncio.gather(*(ctx.evaluate(c, half) for c in candidates))
    scores = [half_score(t, half) for t in trials]
    ranked = sorted(scores, reverse=True)
    cutoff = ranked[max(1, math.ceil(keep_fraction * len(ranked))) - 1]
    floor = half_score(baseline, half)
    finalists = [c for c, s in zip(candidates, scores, strict=True) if s >= max(cutoff, floor)]
    full = await asyncio.gather(*(ctx.evaluate(c) for c in finalists))
    return list(zip(finalists, full, strict=True))
