"""``mipro``: a joint search over every LM stage's instruction and demo set, the way DSPy's
MIPROv2 does it. One teacher pass over the trainset gives traces, from which candidate demo
sets are built as ``bootstrap`` builds them; a prompt model proposes instructions for each
stage, grounded in a summary of the training data, the program, demos from those sets, the
earlier proposals and a random tip (see ``_instructions``). Optuna's TPE (seeded,
multivariate, ask-and-tell) then picks an instruction and a demo set per stage for each
trial, scored on a fresh minibatch of the valset; every few trials and at the end, the
configuration with the best mean minibatch score and no full score yet races the best full
score on half the valset and, if it holds up there, is scored on the full valset. The
baseline (candidate 0 everywhere) enters the study with its full score.
Unlike DSPy, a minibatch score is read against the baseline's scores on the same examples
(which its full evaluation already holds): the study and the leader board get the
baseline's full score plus the mean per-example difference, so a configuration that drew
easy examples does not lead for that (a control variate; ``paired``). On math_qa over ten
seeds it raised the held-out score of the default run from 0.695 to 0.714, no seed
lower.
A configuration's score on an example is never asked for twice: the runner answers
minibatches and full evaluations from what earlier ones of it already scored.
The valset is capped at ``val_size`` examples (a seeded sample, as DSPy's presets: 100,
300 or 1000), and the baseline is scored after bootstrapping and proposing, on the valset
the search can afford: under a ``max_lm_calls`` budget too small for the planned search
(baseline, ``num_trials`` minibatches, a leader's full evaluation every
``minibatch_full_eval_steps`` trials) on that valset, the valset and the minibatch shrink
together to the most examples at which it fits (not below one minibatch), so the search
keeps its trials and measures each on fewer examples, instead of spending the budget on
a few precise ones (on math_qa at half of DSPy's calls, ten seeds: held-out 0.719 against
0.650 on the whole valset); the teacher pass stops in time to leave room for the
proposals and a baseline on one minibatch. The search is anytime too: a trial starts only if the
leader's full evaluation still fits after it (costs from the most LM calls per example
seen), periodic full evaluations only if a later trial and its leader's still fit, and
when trials must stop the leader gets its full evaluation, so the run ends completed with
a verified best instead of being cut off with nothing but the baseline.

Params: ``auto`` ("light", "medium" or "heavy": n = 6, 12 or 18 candidates) sets
``num_candidates`` (n demo sets per stage, its current demos included),
``num_instruction_candidates`` (per stage, its current instruction included: n // 2 while
demos are searched too, as DSPy, else n) and ``num_trials`` (DSPy's
floor(max(2 * v * log2(n), 1.5 * n)), v = 2 choices per LM stage, 1 when zero-shot); each
given explicitly overrides the preset. ``val_size`` (the preset's; given, it is kept
whatever the budget), ``minibatch_size`` (35; 0 or at least the valset size: every trial
is a full evaluation), ``minibatch_full_eval_steps`` (5),
``max_bootstrapped_demos`` and ``max_labeled_demos`` (4 each; both 0: instructions only),
``prompt_model`` (the program's first model), ``init_temperature`` (1.0, the last proposal's;
earlier ones run cooler), ``tip_seed`` (None: tips are drawn from the run's seed),
``data_summary_batches`` (2 observation calls, merged by one more; 0: no summary),
``view_data_batch_size`` (10 examples per observation) and ``bootstrap``'s ``teacher``,
``max_rounds``, ``metric_threshold``, ``bootstrap_pool`` and ``bootstrap_batch``;
``race`` (true; false: every leader gets a full evaluation, as DSPy) and ``paired`` (true;
false: raw minibatch means, as DSPy)."""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import fmean
from typing import TYPE_CHECKING, Any

from ..config import plan
from ._base import (
    Evaluation,
    StrategyContext,
    StrategyParamsError,
    StrategyResult,
    scores_own_baseline,
)
from ._common import CallPlan, best_of
from ._demos import DemoStage, demo_stages
from ._instructions import ProposalStage, proposal_calls, propose, summarize_data
from ._prompting import prompt_model
from ._racing import challenge, paired_differences
from .beacon import _quiet
from .bootstrap import Trace, _candidate_sets, _collect, _Settings, _settings

if TYPE_CHECKING:
    import optuna

PRESETS = {"light": 6, "medium": 12, "heavy": 18}
VAL_SIZES = {"light": 100, "medium": 300, "heavy": 1000}  # as DSPy's presets
DEMOS_IN_CONTEXT = 3  # traces collected for the proposer when no demos are searched
Key = tuple[int, ...]  # an option index per dimension
Dimension = tuple[str, list[Any]]  # an override path and its options, the current first


@dataclass(frozen=True, slots=True)
class _Plan:
    preset: str
    candidates: int
    instructions: int
    trials: int
    minibatch: int
    full_eval_steps: int
    val_size: int
    zero_shot: bool
    temperature: float
    summary_batches: int
    summary_batch_size: int
    tips: random.Random
    race: bool
    paired: bool


def _plan(ctx: StrategyContext, n_stages: int) -> _Plan:
    preset = ctx.param("auto", "light")
    if preset not in PRESETS:
        raise StrategyParamsError(
            f"parameter 'auto' must be one of {', '.join(PRESETS)}; got {preset!r}"
        )
    n = ctx.int_param("num_candidates", PRESETS[preset], low=1)
    zero_shot = (
        ctx.int_param("max_bootstrapped_demos", 4) == 0
        and ctx.int_param("max_labeled_demos", 4) == 0
    )
    # As DSPy: with demos in the search, half the candidates go to instructions.
    halved = "num_candidates" not in ctx.params and not zero_shot
    n_vars = n_stages * (1 if zero_shot else 2)
    trials = math.floor(max(2 * n_vars * math.log2(n), 1.5 * n))
    tip_seed = ctx.param("tip_seed", None)
    if tip_seed is not None and (isinstance(tip_seed, bool) or not isinstance(tip_seed, int)):
        raise StrategyParamsError("parameter 'tip_seed' must be an integer or null")
    return _Plan(
        preset=preset,
        candidates=n,
        instructions=ctx.int_param(
            "num_instruction_candidates", max(1, n // 2) if halved else n, low=1
        ),
        trials=ctx.int_param("num_trials", trials),
        minibatch=ctx.int_param("minibatch_size", 35),
        val_size=ctx.int_param("val_size", VAL_SIZES[preset], low=1),
        full_eval_steps=ctx.int_param("minibatch_full_eval_steps", 5, low=1),
        race=ctx.bool_param("race", True),
        paired=ctx.bool_param("paired", True),
        zero_shot=zero_shot,
        temperature=ctx.float_param("init_temperature", 1.0, low=0.0, high=2.0),
        summary_batches=ctx.int_param("data_summary_batches", 2),
        summary_batch_size=ctx.int_param("view_data_batch_size", 10, low=1),
        tips=ctx.rng if tip_seed is None else random.Random(tip_seed),
    )


@scores_own_baseline
async def mipro(ctx: StrategyContext) -> StrategyResult:
    stages = demo_stages(ctx.spec)
    p = _plan(ctx, len(stages))
    boot = replace(_settings(ctx), num_sets=max(0, p.candidates - 3))
    if p.zero_shot and "bootstrap_pool" not in ctx.params:
        boot = replace(boot, pool=DEMOS_IN_CONTEXT)
    model = prompt_model(ctx) if p.instructions > 1 and stages else ""
    if not stages or not ctx.valset:
        ctx.sample_valset(p.val_size)
        return best_of(await ctx.evaluate({}), [], {"trials": 0})

    ctx.note(f"mipro ({p.preset}): bootstrapping demos from the trainset")
    costs = CallPlan(ctx)  # calls per example, learnt from the teacher's, then the search's
    # Under a call budget the teacher stops in time for the proposals and a baseline on at
    # least one minibatch.
    n_val, minibatch = _sizes(ctx, p)
    proposals = proposal_calls(len(stages), p.instructions - 1, p.summary_batches)
    reserve = (minibatch or n_val, proposals)
    traces = await _collect(ctx, boot, stages, costs, reserve) if boot.pool else []
    demo_sets = _demo_options(ctx, boot, stages, traces, p.zero_shot)
    instructions: dict[str, list[str]] = {s.name: [_instruction(ctx, s.name)] for s in stages}
    skipped = 0
    if p.instructions > 1:
        ctx.note(f"mipro: {len(traces)} traces kept; summarising the training data")
        summary = await summarize_data(ctx, model, p.summary_batches, p.summary_batch_size)
        ctx.note(f"mipro: proposing {p.instructions - 1} instructions per stage")
        shown = [_proposal_stage(ctx, s, demo_sets[s.name], traces, p.zero_shot) for s in stages]
        instructions, skipped = await propose(
            ctx,
            shown,
            model=model,
            per_stage=p.instructions - 1,
            data_summary=summary,
            temperature=p.temperature,
            tips=p.tips,
        )
    dims: list[Dimension] = []
    for s in stages:
        dims += [(f"{s.name}.instructions", instructions[s.name]), (s.path, demo_sets[s.name])]
    dims = [d for d in dims if len(d[1]) > 1]
    p = _narrow(ctx, p if dims else replace(p, trials=0), costs.per_example)
    baseline = costs.seen(await ctx.evaluate({}))
    details: dict[str, Any] = {
        "auto": p.preset,
        "valset_size": len(ctx.valset),
        "bootstrapped": len(traces),
        "instruction_candidates": {s: len(c) for s, c in instructions.items()},
        "demo_sets": {s: len(c) for s, c in demo_sets.items()},
        "proposals_skipped": skipped,
    }
    if not dims or p.trials == 0:
        return best_of(baseline, [], {**details, "trials": 0})
    search = _Search(ctx, dims, baseline, p, costs)
    await search.run()
    return best_of(baseline, search.full_scored, {**details, **search.counts()})


def _sizes(ctx: StrategyContext, p: _Plan) -> tuple[int, int]:
    """The valset size ``val_size`` allows and the minibatch on it (0: trials are full
    evaluations)."""
    n = min(len(ctx.valset), p.val_size)
    return n, p.minibatch if 0 < p.minibatch < n else 0


def _narrow(ctx: StrategyContext, p: _Plan, per_example: float) -> _Plan:
    """Narrow the valset to ``val_size`` examples (as DSPy's presets do) and, unless that
    is given, under a call budget too small for the search the plan asks for further: to
    the most examples at which its baseline, its trials and its leaders' full evaluations
    fit in the calls left (at ``per_example`` calls), the minibatch scaled alike, not below
    one minibatch of the plan unless not even the baseline fits there. Returns the plan
    with the minibatch it will use."""
    n, batch = _sizes(ctx, p)
    left = ctx.calls_left()
    if left is not None and batch and "val_size" not in ctx.params:
        leaders = math.ceil(p.trials / p.full_eval_steps)

        def cost(m: int) -> float:
            b = max(1, round(batch * m / n))
            return per_example * (m + p.trials * b + leaders * (m - b))

        fits = [m for m in range(batch, n + 1) if cost(m) <= left]
        m = fits[-1] if fits else max(1, min(batch, math.floor(left / per_example)))
        if m < n:
            ctx.note(f"mipro: the LM-call budget fits the search on {m} valset examples")
            batch, n = max(1, round(batch * m / n)), m
    ctx.sample_valset(n)
    return replace(p, minibatch=batch)


def _instruction(ctx: StrategyContext, stage: str) -> str:
    return next(p.signature.instructions for p in plan(ctx.spec) if p.name == stage)


def _demo_options(
    ctx: StrategyContext,
    boot: _Settings,
    stages: Sequence[DemoStage],
    traces: Sequence[Trace],
    zero_shot: bool,
) -> dict[str, list[Any]]:
    """Each stage's demo sets without repeats, its current demos first (the baseline's)."""
    options: dict[str, list[Any]] = {s.name: [list(s.current)] for s in stages}
    if zero_shot:
        return options
    for candidate in _candidate_sets(ctx, boot, stages, traces):
        for s in stages:
            demos = candidate[s.path]
            if demos not in options[s.name]:
                options[s.name].append(demos)
    return options


def _proposal_stage(
    ctx: StrategyContext,
    stage: DemoStage,
    demo_sets: Sequence[Sequence[Any]],
    traces: Sequence[Trace],
    zero_shot: bool,
) -> ProposalStage:
    shown = [d for d in demo_sets if d]
    if zero_shot:
        shown = [[t[1][stage.name] for t in traces if stage.name in t[1]]]
    sig = stage.signature
    fields = f"{', '.join(sig.input_names)} -> {', '.join(sig.output_names)}"
    return ProposalStage(stage.name, _instruction(ctx, stage.name), fields, shown)


class _Search:
    """The TPE trials and their bookkeeping: minibatch scores per configuration and
    full-valset scores."""

    def __init__(
        self,
        ctx: StrategyContext,
        dims: Sequence[Dimension],
        baseline: Evaluation,
        p: _Plan,
        plan: CallPlan,
    ) -> None:
        self.ctx, self.dims, self.p = ctx, dims, p
        self.minibatch = p.minibatch  # as _narrow left it: 0 or less than the valset
        base: Key = (0,) * len(dims)
        self.batch_scores: dict[Key, list[float]] = {}
        self.full: dict[Key, float] = {base: baseline.score}
        self.best_full = self.baseline = baseline
        self.stopped_early = 0
        self.full_scored: list[tuple[dict[str, Any], float]] = []
        self.reused_batches = self.reused_examples = 0
        self.trials_run = 0
        self.budget_stopped = False
        self.plan = plan  # what a trial will cost, under a budget
        self.answered: dict[Key, set[int]] = {}  # examples scored without error, by key
        self.worst_errors = 0  # the most examples one minibatch answered with an error
        self.distributions = self._distributions()
        self.study = self._study(baseline.score)

    def counts(self) -> dict[str, int]:
        return {
            "trials": self.trials_run,
            "stopped_for_budget": int(self.budget_stopped),
            "minibatch_size": self.minibatch,
            "full_evaluations": len(self.full_scored),
            "full_evaluations_stopped_early": self.stopped_early,
            "minibatch_evaluations_reused": self.reused_batches,
            "example_scores_reused": self.reused_examples,
        }

    async def run(self) -> None:
        ctx, p = self.ctx, self.p
        ctx.note(f"mipro: {p.trials} trials over {len(self.dims)} choices")
        for t in range(1, p.trials + 1):
            # Under a call budget, a trial starts only if the leader's full evaluation still
            # fits after it: the run ends with a verified best, not cut off mid-search.
            if not self._room(self._trial_cost() + self._leader_cost()):
                self.budget_stopped = True
                ctx.note(f"mipro: the LM-call budget leaves no room for trial {t}")
                break
            trial, key = self._ask()
            if self.minibatch:
                batch = sorted(ctx.rng.sample(range(len(ctx.valset)), self.minibatch))
                score = await self._on_batch(key, batch)
            else:
                score = await self._on_full(key)
            with _quiet():
                self.study.tell(trial, score)
            self.trials_run = t
            ctx.note(f"mipro: trial {t}/{p.trials} scored {score:.3f}")
            periodic = t % p.full_eval_steps == 0 and self._room(
                self._trial_cost() + 2 * self._leader_cost()
            )
            if self.minibatch and (periodic or t == p.trials):
                await self._score_leader()
        if self.budget_stopped and self.minibatch:
            await self._score_leader()

    async def _score_leader(self) -> None:
        """The leader's full score; the study learns it too, as a trial of its own (as
        DSPy)."""
        import optuna

        leader = self._leader()
        if leader is None:
            return
        full = await self._on_full(leader, race=self.p.race)
        params = {path: i for (path, _), i in zip(self.dims, leader, strict=True)}
        with _quiet():
            self.study.add_trial(
                optuna.trial.create_trial(
                    params=params, distributions=self.distributions, value=full
                )
            )

    def _ask(self) -> tuple[optuna.trial.Trial, Key]:
        """The sampler's next trial and its option index per dimension."""
        with _quiet():
            trial = self.study.ask(self.distributions)
        return trial, tuple(int(trial.params[path]) for path, _ in self.dims)

    def _leader_cost(self) -> float:
        """Calls to keep for the leader's full evaluation after a trial: the examples the
        leader lacks, be it today's or the trial's (a minibatch, less as many errors as a
        minibatch had at most; the runner sends an example that failed again). None to
        keep when trials are full evaluations."""
        if not self.minibatch:
            return 0.0
        n = len(self.ctx.valset)
        lacking = n - self.minibatch + self.worst_errors
        leader = self._leader()
        if leader is not None:
            lacking = max(lacking, n - len(self.answered.get(leader, ())))
        return self.plan.cost(lacking)

    def _room(self, calls: float) -> bool:
        return self.plan.fits(calls)

    def _trial_cost(self) -> float:
        return self.plan.cost(self.minibatch or len(self.ctx.valset))

    async def _on_batch(self, key: Key, batch: Sequence[int]) -> float:
        evaluation = self.plan.seen(await self.ctx.evaluate(self._overrides(key), batch))
        answered = {o.index for o in evaluation.outcomes if o.error is None}
        self.answered.setdefault(key, set()).update(answered)
        self.worst_errors = max(self.worst_errors, len(batch) - len(answered))
        self.reused_examples += evaluation.reused
        self.reused_batches += evaluation.reused == len(batch)
        score = self._paired(evaluation, batch)
        self.batch_scores.setdefault(key, []).append(score)
        return score

    def _paired(self, evaluation: Evaluation, batch: Sequence[int]) -> float:
        """The minibatch score as an estimate of the full score: the baseline's full score
        plus the mean difference from the baseline on the same examples."""
        if not self.p.paired:
            return evaluation.score
        return self.baseline.score + fmean(paired_differences(evaluation, self.baseline, batch))

    async def _on_full(self, key: Key, *, race: bool = False) -> float:
        if key in self.full:
            return self.full[key]
        overrides = self._overrides(key)
        # The full valset, not just the unseen examples, so the runner sees a full score
        # (it answers the examples already scored itself). Racing, the leader first meets
        # the best full score on half the valset; stopped there, the study is told its
        # score on that half, and it is not a leader again.
        if race:
            evaluation, full = await challenge(self.ctx, overrides, self.best_full)
        else:
            evaluation, full = await self.ctx.evaluate(overrides), True
        self.plan.seen(evaluation)
        self.full[key] = evaluation.score
        if not full:
            self.stopped_early += 1
            return evaluation.score
        if evaluation.score > self.best_full.score:
            self.best_full = evaluation
        self.full_scored.append((overrides, evaluation.score))
        self.ctx.note(
            f"mipro: full evaluation {len(self.full_scored)} scored {evaluation.score:.3f}"
        )
        return evaluation.score

    def _leader(self) -> Key | None:
        """The configuration with the best mean minibatch score and no full score (the
        earliest tried on ties)."""
        best: tuple[Key, float] | None = None
        for key, scores in self.batch_scores.items():
            mean = sum(scores) / len(scores)
            if key not in self.full and (best is None or mean > best[1]):
                best = (key, mean)
        return None if best is None else best[0]

    def _overrides(self, key: Key) -> dict[str, Any]:
        return {path: options[i] for (path, options), i in zip(self.dims, key, strict=True) if i}

    def _distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        import optuna

        return {
            path: optuna.distributions.CategoricalDistribution(list(range(len(options))))
            for path, options in self.dims
        }

    def _study(self, baseline_score: float) -> optuna.Study:
        import optuna

        seed = self.ctx.rng.getrandbits(32)
        with _quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True)
            study = optuna.create_study(direction="maximize", sampler=sampler)
            baseline = {path: 0 for path, _ in self.dims}
            study.add_trial(
                optuna.trial.create_trial(
                    params=baseline, distributions=self._distributions(), value=baseline_score
                )
            )
        return study
