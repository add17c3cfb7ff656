"""``simba``: Stochastic Introspective Mini-Batch Ascent, the algorithm of DSPy's SIMBA.

Each step takes the next mini-batch of the trainset and samples trajectories: for each of
``num_candidates`` sampling temperatures and each example, a program drawn from the pool by
softmax over mean mini-batch scores (the baseline, which has none, always among the top
ones). Examples are bucketed by how much their trajectories' scores vary (max-min gap, then
max, then max-mean gap); for the most variable buckets a source program is drawn, loses a
few demos at random, and grows by one move: ``append_a_demo`` (the best trajectory's calls
become demos) or ``append_a_rule`` (a prompt model compares the best and the worst
trajectory and writes one rule per stage, appended to its instructions). The new
candidates are scored on the same mini-batch and join the pool; the best is the step's
winner. At the end, the best winners are compared on the trainset too (final selection).

Differences from DSPy, for economy and durability: identical candidates are scored once;
trajectories are screened (``screen_trajectories``): each example is first sampled at the
coolest and the hottest temperature, and only those whose two outcomes differ get the
other samplers, since an example every sampler gets right (or wrong) ranks below the
varied ones anyway (on math_qa it saved 11% of a default run's calls, five seeds, held-out
score not lower);
each step's winner is scored on the valset as it comes (after a race against the best so
far on half of it: ``race``), so a run ended by a budget still returns the best so far;
the final selection compares only the ``final_candidates`` best winners by valset score,
on the valset plus the training examples their demos did not come from. Under a call
budget too small for the steps left at ``bsize``, a step's mini-batch shrinks (down to one
example per candidate) until they are all expected to fit, at the costs the earlier steps
measured (the dearest case for the first): on math_qa at half of DSPy's calls, all eight
steps on smaller batches scored 4.5 points of held-out score above four full ones (five
seeds). ``details.bsize`` lists each step's.
A step then starts only if its dearest case still fits (at the most LM calls per example
seen so far), and the final selection only if it fits too, so a budgeted run ends
completed with its best verified valset score instead of being cut off inside a step.
Candidates may also race on the mini-batch (``race_minibatch``: successive halving, all on
a quarter of it, the better half on the next quarter, the better half of those on the
rest), which saves about a third of their calls but decides on a few examples: on math_qa
over five seeds it cost 7 points of held-out score, so it is off unless asked for. Sampling
temperatures replace DSPy's rollout ids: the first is the program's own, the rest spread
over [0.5, 1.0] (within the program's temperature variable, if it has one).

Params: ``bsize`` (32), ``num_candidates`` (6), ``max_steps`` (8), ``max_demos`` (4),
``temperature_for_sampling`` (0.2), ``temperature_for_candidates`` (0.2), ``race`` (true),
``race_minibatch`` (false), ``screen_trajectories`` (true), ``demo_input_field_maxlen``
(100000), ``final_candidates`` (3) and ``prompt_model`` (the program's model)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import plan
from ..program import ProgramSpec
from ._base import (
    Evaluation,
    ExampleOutcome,
    StrategyContext,
    StrategyResult,
)
from ._common import CallPlan, baseline_of, best_of
from ._demos import DemoStage, demo_stages
from ._racing import challenge
from ._records import canonical
from ._simba_moves import Move, Moves, bucket_order, percentile, sampling_temperatures


@dataclass
class _Program:
    overrides: dict[str, Any]
    scores: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else 0.0


@dataclass(frozen=True, slots=True)
class _Settings:
    bsize: int
    num_candidates: int
    max_steps: int
    max_demos: int
    t_sampling: float
    t_candidates: float
    race: bool
    race_minibatch: bool
    screen: bool
    demo_maxlen: int
    final_k: int


def _settings(ctx: StrategyContext) -> _Settings:
    return _Settings(
        bsize=ctx.int_param("bsize", 32, low=1),
        num_candidates=ctx.int_param("num_candidates", 6, low=1),
        max_steps=ctx.int_param("max_steps", 8),
        max_demos=ctx.int_param("max_demos", 4),
        t_sampling=ctx.float_param("temperature_for_sampling", 0.2, low=1e-3, high=100.0),
        t_candidates=ctx.float_param("temperature_for_candidates", 0.2, low=1e-3, high=100.0),
        race=ctx.bool_param("race", True),
        race_minibatch=ctx.bool_param("race_minibatch", False),
        screen=ctx.bool_param("screen_trajectories", True),
        demo_maxlen=ctx.int_param("demo_input_field_maxlen", 100_000, low=1),
        final_k=ctx.int_param("final_candidates", 3),
    )


async def simba(ctx: StrategyContext) -> StrategyResult:
    s = _settings(ctx)
    baseline = await baseline_of(ctx)
    stages = demo_stages(ctx.spec)
    if not stages or s.max_steps == 0 or not ctx.trainset:
        return best_of(baseline, [], {"steps": 0})
    search = _Search(ctx, s, Moves(ctx, stages, s.max_demos, s.demo_maxlen), baseline)
    steps = 0
    for step in range(s.max_steps):
        if not search.size_batch(s.max_steps - step):
            ctx.note(f"simba: the LM-call budget leaves no room for step {step + 1}")
            search.budget_stopped = True
            break
        await search.step(step)
        steps += 1
    pairs = [(search.pool[i].overrides, score) for i, score in search.winners]
    chosen = await search.final_selection(s.final_k, stages)
    details = {
        "steps": steps,
        "bsize": search.bsizes,
        "stopped_for_budget": int(search.budget_stopped),
        "programs": len(search.pool),
        "winners": [score for _, score in search.winners],
        "winners_stopped_early": search.stopped_early,
        "rules_written": search.moves.rules_written,
        "demos_appended": search.moves.demos_appended,
    }
    if chosen is None:
        return best_of(baseline, pairs, details)
    overrides, score, finalists = chosen
    return StrategyResult(dict(overrides), score, {**details, "finalists": finalists})


class _Search:
    def __init__(
        self, ctx: StrategyContext, s: _Settings, moves: Moves, baseline: Evaluation
    ) -> None:
        self.ctx, self.s, self.moves = ctx, s, moves
        self.pool: list[_Program] = []
        self.index: dict[str, int] = {}  # canonical overrides -> pool position
        self.full: dict[str, Evaluation] = {}  # canonical overrides -> full-valset answer
        self.winners: list[tuple[int, float]] = []  # pool position, full-valset score
        self.stopped_early = 0
        self.order = list(range(len(ctx.trainset)))
        ctx.rng.shuffle(self.order)
        self.cursor = 0
        self.bsize = min(s.bsize, len(self.order))
        self.bsizes: list[int] = []  # each step's
        self.temperatures = sampling_temperatures(ctx.spec, s.num_candidates)
        self.plan = CallPlan(ctx, baseline)
        self.budget_stopped = False
        self.sampled = 0  # trajectories taken so far
        self.valset_calls: list[int] = []  # what scoring each step's winner cost
        self.pool.append(_Program({}))
        self.record_full({}, baseline)

    def size_batch(self, steps_left: int) -> bool:
        """The next step's mini-batch size: ``bsize``, or under a call budget too small for
        the steps left at ``bsize``, the largest at which they are expected to fit (at the
        costs measured in the steps so far, the dearest case before the first), down to one
        example per candidate (the buckets the candidates grow from): SIMBA gains by its
        steps, so a tight budget buys more, smaller steps rather than fewer full ones. The
        final selection is not reserved. Returns whether the step fits in its dearest case
        (the step is not taken if not)."""
        left = self.ctx.calls_left()
        if left is None:
            return True
        size = min(self.s.bsize, len(self.order))
        floor = min(self.s.num_candidates + 1, size)
        while size > floor and (
            self._expected_cost(size) * steps_left > left
            or not self.plan.fits(self.step_cost(size))
        ):
            size -= 1
        self.bsize = size
        return self.plan.fits(self.step_cost(size))

    def step_cost(self, batch: int) -> float:
        """The most a step on ``batch`` examples can cost: every trajectory, the candidates
        on the batch, the winner's valset score (racing: half of it, then the other half),
        and one rule per candidate. An example that failed with an error is sent again, so
        LM errors can take a step over by as many calls."""
        return self._cost(batch, len(self.temperatures), self.plan.cost(len(self.ctx.valset)))

    def _expected_cost(self, batch: int) -> float:
        """What a step on ``batch`` examples is expected to cost: trajectories per example
        and the winner's valset score as in the steps so far (the dearest case before)."""
        if not self.bsizes:
            return self.step_cost(batch)
        per_example = self.sampled / sum(self.bsizes)
        return self._cost(batch, per_example, sum(self.valset_calls) / len(self.valset_calls))

    def _cost(self, batch: int, trajectories: float, valset: float) -> float:
        candidates = self.s.num_candidates + 1
        return self.plan.cost(batch * (trajectories + candidates)) + valset + candidates

    async def step(self, step: int) -> None:
        batch = self._next_batch()
        self.bsizes.append(len(batch))
        self.ctx.note(f"simba step {step + 1}/{self.s.max_steps}: sampling trajectories")
        outcomes = await self._trajectories(batch)
        flat = [o.score for row in outcomes for o in row]
        p10, p90 = percentile(flat, 10), percentile(flat, 90)
        buckets = [sorted(row, key=lambda o: -o.score) for row in outcomes]
        ranked = sorted(range(len(batch)), key=lambda i: bucket_order(buckets[i]), reverse=True)
        planned: list[tuple[dict[str, Any], Move, list[ExampleOutcome]]] = []
        for i in ranked[: self.s.num_candidates + 1]:
            source = self._softmax_pick(self._top_plus_baseline(), self.s.t_candidates)
            start = self.moves.drop_demos(self.pool[source].overrides)
            planned.append((start, self.ctx.rng.choice(self.moves.available), buckets[i]))
        self.ctx.note(f"simba step {step + 1}: building {len(planned)} candidates")
        built = await asyncio.gather(
            *(move(start, bucket, p10, p90) for start, move, bucket in planned)
        )
        winner = await self._score_candidates(list(built), batch)
        if winner is not None:
            self.ctx.note(f"simba step {step + 1}: scoring the step's winner on the valset")
            before = self.ctx.calls_left()
            evaluation = await self._score_on_valset(self.pool[winner].overrides)
            after = self.ctx.calls_left()
            if before is not None and after is not None:
                self.valset_calls.append(before - after)
            if evaluation is not None:
                self.winners.append((winner, evaluation.score))

    async def final_selection(
        self, k: int, stages: Sequence[DemoStage]
    ) -> tuple[dict[str, Any], float, int] | None:
        """SIMBA's final selection over the winners: the ``k`` best by valset score (the
        baseline among them if it is) are scored on the trainset too, leaving out the
        examples their own demos came from, and the best mean over both sets wins. Returns
        the winner, its valset score and how many were compared; None when k < 2 or
        fewer than two programs qualify."""
        ranked: list[tuple[str, Evaluation]] = sorted(
            self.full.items(), key=lambda item: -item[1].score
        )[:k]
        if k < 2 or len(ranked) < 2:
            return None
        programs = [dict(evaluation.overrides) for _, evaluation in ranked]
        subsets = [_unseen(self.ctx.trainset, p, self.ctx.spec, stages) for p in programs]
        if not self.plan.fits(self.plan.cost(sum(len(subset) for subset in subsets))):
            self.ctx.note("simba: the LM-call budget leaves no room for the final selection")
            self.budget_stopped = True
            return None
        self.ctx.note(f"simba: final selection among {len(ranked)} programs on the trainset")
        on_train = await asyncio.gather(
            *(
                self.ctx.evaluate(p, subset, split="train")
                for p, subset in zip(programs, subsets, strict=True)
                if subset
            )
        )
        answers = iter(on_train)
        best: tuple[float, int] | None = None
        for n, ((_, val), subset) in enumerate(zip(ranked, subsets, strict=True)):
            total = sum(o.score for o in val.outcomes)
            count = len(val.outcomes)
            if subset:
                train = next(answers)
                total += sum(o.score for o in train.outcomes)
                count += len(train.outcomes)
            mean = total / count
            if best is None or mean > best[0]:
                best = (mean, n)
        assert best is not None
        _, winner = ranked[best[1]]
        return programs[best[1]], winner.score, len(ranked)

    def record_full(self, overrides: Mapping[str, Any], evaluation: Evaluation) -> None:
        self.full[canonical(overrides)] = evaluation

    @property
    def best(self) -> Evaluation | None:
        """The best full-valset answer so far (the earliest of ties)."""
        return max(self.full.values(), key=lambda e: e.score, default=None)

    async def _score_on_valset(self, overrides: dict[str, Any]) -> Evaluation | None:
        """The full-valset answer for ``overrides``. Racing, the candidate first meets the
        best program so far on the first half of the valset and goes on only if it does at
        least as well there (the runner answers the second pass over that half from the first)."""
        key = canonical(overrides)
        if key in self.full:
            return self.full[key]
        if self.s.race and self.best is not None:
            evaluation, full = await challenge(self.ctx, overrides, self.best)
            if not full:
                self.stopped_early += 1
                return None
            self.record_full(overrides, evaluation)
            return evaluation
        evaluation = await self.ctx.evaluate(overrides)
        self.record_full(overrides, evaluation)
        return evaluation

    def _next_batch(self) -> list[int]:
        size = self.bsize
        if self.cursor + size > len(self.order):
            self.ctx.rng.shuffle(self.order)
            self.cursor = 0
        batch = self.order[self.cursor : self.cursor + size]
        self.cursor += size
        return batch

    async def _trajectories(self, batch: Sequence[int]) -> list[list[ExampleOutcome]]:
        """Outcomes per example, one per sampling temperature: each from a program drawn per
        (example, temperature); the pairs that share a program and a temperature go out as
        one evaluation. Screening (``screen_trajectories``), every example first gets the
        coolest and the hottest sampler, and only those whose two outcomes differ get the
        rest: an example every sampler gets right (or wrong) cannot seed a candidate that
        SIMBA would pick before the varied ones."""
        temps = list(range(len(self.temperatures)))
        positions = list(range(len(batch)))
        if not self.s.screen or len(temps) < 3:
            return await self._sample(batch, positions, temps)
        screen = [temps[0], temps[-1]]
        rows = await self._sample(batch, positions, screen)
        varied = [i for i in positions if len({o.score for o in rows[i]}) > 1]
        if varied:
            more = await self._sample(batch, varied, temps[1:-1])
            for i in varied:
                rows[i] += more[i]
        return rows

    async def _sample(
        self, batch: Sequence[int], positions: Sequence[int], temps: Sequence[int]
    ) -> list[list[ExampleOutcome]]:
        """Trajectories of the examples at ``positions`` of the batch, one per temperature
        index in ``temps``; rows for the other positions stay empty."""
        top = self._top_plus_baseline()
        groups: dict[tuple[int, int], list[int]] = {}
        for t in temps:
            for position in positions:
                program = self._softmax_pick(top, self.s.t_sampling)
                groups.setdefault((program, t), []).append(position)
        keys = list(groups)
        evaluations = await asyncio.gather(
            *(
                self.ctx.evaluate(
                    {**self.pool[p].overrides, **self.temperatures[t]},
                    [batch[i] for i in groups[(p, t)]],
                    split="train",
                    want_traces=True,
                )
                for p, t in keys
            )
        )
        rows: list[list[ExampleOutcome]] = [[] for _ in batch]
        for key, evaluation in zip(keys, evaluations, strict=True):
            self.plan.seen(evaluation)
            self.sampled += len(groups[key])
            by_index = {o.index: o for o in evaluation.outcomes}
            for position in groups[key]:
                rows[position].append(by_index[batch[position]])
        return rows

    async def _score_candidates(
        self, candidates: Sequence[dict[str, Any]], batch: Sequence[int]
    ) -> int | None:
        """Score the distinct candidates on the batch (racing by successive halving with
        ``race_minibatch``), add them to the pool and return the winner's position."""
        distinct: dict[str, dict[str, Any]] = {}
        for overrides in candidates:
            distinct.setdefault(canonical(overrides), overrides)
        if not distinct:
            return None
        keys = list(distinct)
        racing_on = self.s.race_minibatch and len(keys) > 1
        rounds = _race_rounds(batch) if racing_on else [list(batch)]
        scores: dict[str, list[float]] = {k: [] for k in keys}
        racing = keys
        for n, part in enumerate(rounds):
            evaluations = await asyncio.gather(
                *(self.ctx.evaluate(distinct[k], part, split="train") for k in racing)
            )
            for k, evaluation in zip(racing, evaluations, strict=True):
                self.plan.seen(evaluation)
                scores[k].extend(o.score for o in evaluation.outcomes)
            if n + 1 < len(rounds):
                racing = _better_half(racing, scores)
        finished = [k for k in keys if len(scores[k]) == len(batch)]
        best = max(finished, key=lambda k: sum(scores[k]))  # max keeps the first of ties
        for k in keys:
            self._register(distinct[k], scores[k])
        return self.index[best]

    def _register(self, overrides: dict[str, Any], scores: list[float]) -> None:
        key = canonical(overrides)
        if key in self.index:
            self.pool[self.index[key]].scores.extend(scores)
        else:
            self.index[key] = len(self.pool)
            self.pool.append(_Program(overrides, list(scores)))

    def _top_plus_baseline(self) -> list[int]:
        ranked = sorted(range(len(self.pool)), key=lambda i: -self.pool[i].mean)
        top = ranked[: self.s.num_candidates]
        if 0 not in top:
            top[-1] = 0
        return top

    def _softmax_pick(self, candidates: Sequence[int], temperature: float) -> int:
        best = max(self.pool[i].mean for i in candidates)
        # Shifted by the best mean: the same probabilities, and no overflow.
        weights = [math.exp((self.pool[i].mean - best) / temperature) for i in candidates]
        return self.ctx.rng.choices(list(candidates), weights=weights, k=1)[0]


def _unseen(
    trainset: Sequence[Mapping[str, Any]],
    overrides: Mapping[str, Any],
    spec: ProgramSpec,
    stages: Sequence[DemoStage],
) -> list[int]:
    """Training examples none of the program's demos was made from (same input values)."""
    shown: set[str] = set()
    inputs: dict[str, tuple[str, ...]] = {st.name: st.signature.input_names for st in stages}
    for planned in plan(spec, overrides):
        for demo in planned.config.get("demos") or ():
            names = inputs.get(planned.name, ())
            shown.add(canonical({k: demo[k] for k in names if k in demo}))
    out = []
    for i, example in enumerate(trainset):
        keys = {
            canonical({k: example[k] for k in names if k in example}) for names in inputs.values()
        }
        if not keys & shown:
            out.append(i)
    return out


def _race_rounds(batch: Sequence[int]) -> list[list[int]]:
    """Successive halving over the batch: a quarter, another quarter, then the rest, with
    the better half of the field going on after each round (fewer rounds for tiny batches)."""
    quarter = len(batch) // 4
    if quarter == 0:
        return [list(batch)]
    return [list(batch[:quarter]), list(batch[quarter : 2 * quarter]), list(batch[2 * quarter :])]


def _better_half(keys: Sequence[str], scores: Mapping[str, list[float]]) -> list[str]:
    """The keys whose score so far reaches the median one (ties kept), in their order."""
    totals = sorted((sum(scores[k]) for k in keys), reverse=True)
    cutoff = totals[max(0, (len(totals) + 1) // 2 - 1)]
    return [k for k in keys if sum(scores[k]) >= cutoff]
