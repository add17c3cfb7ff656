"""``beacon``: Bayesian search over the program's whole variable space with Optuna's TPE
(ask-and-tell), each trial first scored on a fresh seeded minibatch of the valset and only
the promising ones on the full valset: those among the best minibatch scores so far that
are also not clearly worse there than the best full evaluation so far on the same examples
(known without a call; "clearly" is by more than one standard error of the paired
differences, the bar racing uses everywhere).

Params: ``n_trials`` (16: asks of the sampler), ``minibatch_size`` (8; 0 or at least the
valset size: every trial goes straight to the full valset) and ``keep_fraction`` (0.5: to
go on to the full valset, a trial's minibatch score must lie within the top
``keep_fraction`` of the minibatch scores seen so far, itself included, or tie the best,
besides not being clearly worse than the best full evaluation on the same examples).
The sampler is told the full-valset score of a trial that got one, else its minibatch
score. A configuration suggested again is told its earlier score without new calls. Under a
call budget an evaluation starts only if it still fits (at the most LM calls per example
seen so far): the trials stop at the first minibatch, or the first full evaluation of a
promising trial, that would not, so the run ends with every full score it began instead of
being cut off inside one. The first evaluation of a configuration dearer than any seen
before (say chain of thought after a one-call baseline) can still go over the budget: the
runner then ends the run with the best so far. ``details["trials"]`` counts the trials
whose score the sampler was told. The sampler's seed is drawn from ``ctx.rng``, so the same
seed and the same answers give the same asks, which is what a replay needs."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._base import Evaluation, StrategyContext, StrategyResult
from ._common import CallPlan, baseline_of, best_of
from ._racing import clearly_worse
from ._records import canonical

if TYPE_CHECKING:
    import optuna


async def beacon(ctx: StrategyContext) -> StrategyResult:
    n_trials = ctx.int_param("n_trials", 16)
    minibatch = ctx.int_param("minibatch_size", 8)
    keep_fraction = ctx.float_param("keep_fraction", 0.5, low=0.0, high=1.0)
    baseline = await baseline_of(ctx)
    space = ctx.spec.variables
    if n_trials == 0 or not space.optuna_distributions():
        return best_of(baseline, [], {"trials": 0})
    n_val = len(ctx.valset)
    early_stopping = 0 < minibatch < n_val
    study = _study(ctx.rng.getrandbits(32), n_trials)
    ctx.note(
        f"beacon: {n_trials} TPE trials" + (f", minibatch {minibatch}" if early_stopping else "")
    )

    told: dict[str, float] = {}  # canonical assignment -> the score the sampler was told
    batch_scores: list[float] = []
    full: list[tuple[dict[str, Any], float]] = []
    stopped = repeats = trials = 0
    plan = CallPlan(ctx, baseline)
    budget_stopped = False
    # The best full evaluation so far, per example: a trial's minibatch is compared with
    # it on the same examples, which costs no call.
    incumbent = baseline
    for _ in range(n_trials):
        with _quiet():
            trial = study.ask()
            assignment = space.suggest(trial)
        key = canonical(assignment)
        if key in told:
            repeats += 1
            trials += 1
            with _quiet():
                study.tell(trial, told[key])
            continue
        if not plan.fits(plan.cost(minibatch if early_stopping else n_val)):
            budget_stopped = True  # the asked trial stays unanswered: the study ends here
            break
        if not early_stopping:
            score = plan.seen(await ctx.evaluate(assignment)).score
            full.append((assignment, score))
        else:
            # A fresh draw per trial, so no single lucky batch decides every comparison.
            batch = sorted(ctx.rng.sample(range(n_val), minibatch))
            trial_batch = plan.seen(await ctx.evaluate(assignment, batch))
            score = trial_batch.score
            batch_scores.append(score)
            if not _promising(batch_scores, keep_fraction) or clearly_worse(
                trial_batch, incumbent, batch
            ):
                stopped += 1
            elif plan.fits(plan.cost(n_val - _answered(trial_batch))):
                evaluation = plan.seen(await ctx.evaluate(assignment))
                score = evaluation.score
                full.append((assignment, score))
                if score > incumbent.score:
                    incumbent = evaluation
            else:
                budget_stopped = True  # promising, but its full score would not fit
                break
        told[key] = score
        with _quiet():
            study.tell(trial, score)
        trials += 1
    details = {
        "trials": trials,
        "full_evaluations": len(full),
        "stopped_early": stopped,
        "repeats": repeats,
        "stopped_for_budget": int(budget_stopped),
    }
    return best_of(baseline, full, details)


def _answered(evaluation: Evaluation) -> int:
    """Examples ``evaluation`` scored without an error: the runner does not ask for them
    again when the same configuration is scored on the full valset."""
    return sum(o.error is None for o in evaluation.outcomes)


def _promising(scores: list[float], keep_fraction: float) -> bool:
    """Whether the last minibatch score is among the top ``keep_fraction`` of ``scores``
    (itself included) or at least ties the best of them."""
    score = scores[-1]
    ranked = sorted(scores, reverse=True)
    cutoff = ranked[max(1, math.ceil(keep_fraction * len(ranked))) - 1]
    return score >= cutoff or score >= ranked[0]


def _study(seed: int, n_trials: int) -> optuna.Study:
    import optuna

    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(5, n_trials))
    with _quiet():
        return optuna.create_study(direction="maximize", sampler=sampler)


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence Optuna's per-trial INFO logs around synchronous calls only, restoring the
    caller's verbosity after: no await happens inside, so no other task sees the change."""
    import optuna

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)
