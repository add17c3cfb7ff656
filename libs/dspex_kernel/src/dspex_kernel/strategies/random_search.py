"""``random``: random search over the program's variable space. The space's defaults and
seeded samples are scored on the valset (all at once); the best wins, ties to the earlier,
the baseline first. Params: ``n_candidates`` (8, defaults included) and ``minibatch``
(None: score every candidate on the full valset; else score them on one seeded minibatch
of that size and re-score the leader on the full valset)."""

from __future__ import annotations

import asyncio
from typing import Any

from ._base import StrategyContext, StrategyResult
from ._common import baseline_of, best_of
from ._records import canonical

# Samples drawn per wanted candidate before giving up on finding new distinct ones (a
# small discrete space may have fewer configurations than asked for).
_DRAWS_PER_CANDIDATE = 20


async def random_search(ctx: StrategyContext) -> StrategyResult:
    n_candidates = ctx.int_param("n_candidates", 8)
    minibatch = ctx.param("minibatch", None)
    if minibatch is not None:
        minibatch = ctx.int_param("minibatch", 0, low=1)
    baseline = await baseline_of(ctx)
    candidates = _candidates(ctx, n_candidates)
    if not candidates:
        return best_of(baseline, [], {"candidates": 0})
    ctx.note(f"random search: scoring {len(candidates)} candidates")
    n_val = len(ctx.valset)
    if minibatch is None or minibatch >= n_val:
        scored = await asyncio.gather(*(ctx.evaluate(c) for c in candidates))
        pairs = [(c, e.score) for c, e in zip(candidates, scored, strict=True)]
        return best_of(baseline, pairs, {"candidates": len(candidates)})
    batch = sorted(ctx.rng.sample(range(n_val), minibatch))
    scored = await asyncio.gather(*(ctx.evaluate(c, batch) for c in candidates))
    leader = max(range(len(candidates)), key=lambda i: (scored[i].score, -i))
    full = await ctx.evaluate(candidates[leader])
    details = {"candidates": len(candidates), "minibatch": minibatch}
    return best_of(baseline, [(candidates[leader], full.score)], details)


def _candidates(ctx: StrategyContext, n: int) -> list[dict[str, Any]]:
    space = ctx.spec.variables
    if not len(space) or n == 0:
        return []
    seen: set[str] = set()
    out: list[dict[str, Any]] = []

    def add(assignment: dict[str, Any]) -> None:
        key = canonical(assignment)
        if assignment and key not in seen:
            seen.add(key)
            out.append(assignment)

    add(space.defaults())
    for _ in range(n * _DRAWS_PER_CANDIDATE):
        if len(out) >= n:
            break
        add(space.sample(ctx.rng))
    return out
