"""The ``beacon`` strategy: TPE over the variable space against a fake evaluator whose
score is a known function of the candidate (unit), then on math_qa with the simulated LM
over HTTP (integration)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from dspex_kernel import (
    STRATEGIES,
    Budget,
    Endpoint,
    Evaluation,
    ExampleOutcome,
    InMemoryCallLog,
    LMClient,
    LMRequest,
    LMResponse,
    ProgramSpec,
    Runner,
    RunOutcome,
    Runtime,
    Usage,
    load_examples,
    optimize,
)
from dspex_kernel.cache import InMemoryLRUCache
from dspex_kernel.strategies import Split, StrategyParamsError
from dspex_kernel.testing import Coverage

VARIABLES: list[dict[str, Any]] = [
    {
        "name": "module",
        "kind": "choice",
        "path": "s.module",
        "choices": ["predict", "chain_of_thought"],
    },
    {"name": "model", "kind": "choice", "path": "*.model", "choices": ["a", "b", "c"]},
    {"name": "temperature", "kind": "float", "path": "*.temperature", "low": 0.0, "high": 1.0},
]
TRAIN = [{"q": f"train {i}", "a": i} for i in range(10)]
VAL = [{"q": f"val {i}", "a": i} for i in range(20)]
Score = Callable[[Mapping[str, Any], Split, tuple[int, ...]], float]


def spec_with(variables: list[dict[str, Any]]) -> ProgramSpec:
    return ProgramSpec.from_data(
        {
            "name": "t",
            "stages": [{"name": "s", "module": "predict", "signature": "q -> a: int"}],
            "configuration": {"defaults": {"model": "m"}},
            "variables": {"variables": variables},
        }
    )


def peaked(
    overrides: Mapping[str, Any], split: Split = "val", indices: tuple[int, ...] = ()
) -> float:
    """Best (1.0) with chain of thought at temperature 0.3; the model does not matter."""
    module = 0.5 if overrides.get("module") == "chain_of_thought" else 0.0
    return module + 0.5 * (1.0 - abs(float(overrides.get("temperature", 0.0)) - 0.3))


class Crash(BaseException):
    """A process dying mid-run (not an Exception: nothing may swallow it)."""


class Fake:
    """Scores come from ``score``; records every call; may crash at one call number. An
    evaluation costs one LM call per example, ``cot_calls`` with chain of thought."""

    def __init__(
        self,
        score: Score = peaked,
        *,
        crash_at: int | None = None,
        cot_calls: int = 1,
        per_example: Callable[[Mapping[str, Any], int], float] | None = None,
    ) -> None:
        self.score, self.crash_at, self.cot_calls = score, crash_at, cot_calls
        self.per_example = per_example  # when set, example scores vary and ``score`` is unused
        self.calls: list[tuple[int, dict[str, Any], Split, tuple[int, ...]]] = []
        self.coverage, self.completes = Coverage({"train": len(TRAIN), "val": len(VAL)}), []

    async def __call__(
        self,
        call: int,
        overrides: Mapping[str, Any],
        split: Split,
        indices: tuple[int, ...],
        want_traces: bool,
    ) -> Evaluation:
        self.calls.append((call, dict(overrides), split, indices))
        self.completes.append(self.coverage.add(overrides, split, indices))
        if call == self.crash_at:
            raise Crash()
        if self.per_example is not None:
            each = [self.per_example(overrides, i) for i in indices]
            outcomes = tuple(
                ExampleOutcome(i, x, {"a": i}) for i, x in zip(indices, each, strict=True)
            )
            score = sum(each) / len(each)
        else:
            score = self.score(overrides, split, indices)
            outcomes = tuple(ExampleOutcome(i, score, {"a": i}) for i in indices)
        per_example = self.cot_calls if overrides.get("module") == "chain_of_thought" else 1
        usage = Usage(per_example * len(indices))
        return Evaluation(call, dict(overrides), split, indices, score, outcomes, usage)

    def full(self) -> list[dict[str, Any]]:
        """The configurations scored on the full valset, in order."""
        return [c[1] for c, done in zip(self.calls, self.completes, strict=True) if done]

    def minibatches(self) -> list[tuple[dict[str, Any], tuple[int, ...]]]:
        return [
            (c[1], c[3]) for c, done in zip(self.calls, self.completes, strict=True) if not done
        ]


async def never_lm(call: int, request: LMRequest) -> LMResponse:
    raise AssertionError("beacon makes no LM calls of its own")


def runner(
    fake: Fake,
    *,
    strategy: str = "beacon",
    seed: int = 3,
    params: Mapping[str, Any] | None = None,
    variables: list[dict[str, Any]] = VARIABLES,
    log: InMemoryCallLog | None = None,
    **kw: Any,
) -> Runner:
    return Runner(
        spec_with(variables),
        TRAIN,
        VAL,
        strategy=strategy,
        seed=seed,
        params=params,
        log=log if log is not None else InMemoryCallLog(),
        evaluate=fake,
        lm=never_lm,
        **kw,
    )


@pytest.mark.unit
def test_beacon_is_registered() -> None:
    assert "beacon" in STRATEGIES


@pytest.mark.unit
async def test_beacon_finds_the_peak_and_beats_random_search_with_the_same_budget() -> None:
    beacon_best, random_best = [], []
    for seed in range(3):
        fake = Fake()
        outcome = await runner(fake, seed=seed, params={"n_trials": 24, "minibatch_size": 0}).run()
        assert outcome.status == "completed"
        assert len(fake.calls) == 25  # the baseline, then one full evaluation per new trial
        assert outcome.best_overrides is not None
        assert outcome.best_overrides["module"] == "chain_of_thought"
        assert abs(outcome.best_overrides["temperature"] - 0.3) < 0.1
        assert outcome.best_score == peaked(outcome.best_overrides)
        beacon_best.append(outcome.best_score)
        rand = await runner(Fake(), strategy="random", seed=seed, params={"n_candidates": 24}).run()
        assert rand.best_score is not None
        random_best.append(rand.best_score)
    assert sum(beacon_best) > sum(random_best)


@pytest.mark.unit
async def test_early_stopping_skips_full_evaluations_of_poor_trials() -> None:
    fake = Fake()
    params = {"n_trials": 16, "minibatch_size": 5, "keep_fraction": 0.5}
    outcome = await runner(fake, params=params).run()
    batches = fake.minibatches()
    full = fake.full()[1:]  # without the baseline
    assert len(batches) == 16  # one fresh minibatch per trial (no repeats in a float space)
    assert len({b[1] for b in batches}) > 1
    assert all(len(b[1]) == 5 and len(set(b[1])) == 5 for b in batches)
    assert 0 < len(full) < len(batches)
    # Exactly the trials whose minibatch score was in the top half so far, and at least
    # the best full score so far (the baseline's at first), went on.
    seen: list[float] = []
    expected = []
    incumbent = peaked({})
    for overrides, _ in batches:
        seen.append(peaked(overrides))
        ranked = sorted(seen, reverse=True)
        if seen[-1] >= ranked[max(1, -(-len(seen) // 2)) - 1] and seen[-1] >= incumbent:
            expected.append(overrides)
            incumbent = max(incumbent, seen[-1])
    assert full == expected
    assert outcome.best_overrides in full
    assert outcome.best_score == pytest.approx(max(peaked(o) for o in full))


@pytest.mark.unit
async def test_keep_fraction_zero_keeps_only_trials_that_tie_the_best() -> None:
    fake = Fake()
    await runner(fake, params={"n_trials": 10, "minibatch_size": 5, "keep_fraction": 0.0}).run()
    best, incumbent = float("-inf"), peaked({})
    for overrides, _ in fake.minibatches():
        went_on = overrides in fake.full()[1:]
        assert went_on == (peaked(overrides) >= max(best, incumbent))
        best = max(best, peaked(overrides))
        incumbent = max(incumbent, peaked(overrides)) if went_on else incumbent


def mostly_right(overrides: Mapping[str, Any], index: int) -> float:
    """The baseline gets three examples in four right (0.75 in all); any other
    configuration scores 0.55 on every example."""
    if overrides:
        return 0.55
    return 0.0 if index % 4 == 0 else 1.0


@pytest.mark.unit
async def test_a_trial_goes_on_unless_clearly_worse_than_the_best_on_its_own_examples() -> None:
    went_on = set()
    for seed in range(12):
        fake = Fake(per_example=mostly_right)
        params = {"n_trials": 1, "minibatch_size": 5}
        outcome = await runner(fake, seed=seed, params=params).run()
        ((_, batch),) = fake.minibatches()
        # The bar is the baseline on the trial's own examples, with one standard error of
        # the paired differences as slack (not the baseline's overall 0.75).
        diffs = [0.55 - mostly_right({}, i) for i in batch]
        slack = statistics.stdev(diffs) / math.sqrt(len(diffs))
        goes_on = len(fake.full()) == 2
        assert goes_on == (statistics.fmean(diffs) >= -slack), (batch, diffs)
        assert outcome.details["stopped_early"] == int(not goes_on)
        went_on.add(goes_on)
    assert went_on == {True, False}  # both cases were met


@pytest.mark.unit
async def test_an_evaluation_that_fits_the_budget_exactly_runs() -> None:
    # The baseline (20), a minibatch (8), then the rest of the valset (12): exactly 40.
    fake = Fake()
    outcome = await runner(fake, budget=Budget(max_lm_calls=40)).run()
    assert outcome.status == "completed"
    assert (outcome.usage.calls, len(fake.full()), outcome.details["trials"]) == (40, 2, 1)
    assert outcome.details["stopped_for_budget"] == 1


@pytest.mark.unit
async def test_conditional_variables_are_suggested_only_when_their_condition_holds() -> None:
    variables = [
        VARIABLES[0],
        {**VARIABLES[2], "condition": {"variable": "module", "in": ["chain_of_thought"]}},
    ]
    fake = Fake()
    params = {"n_trials": 16, "minibatch_size": 0}
    outcome = await runner(fake, params=params, variables=variables).run()
    candidates = [c[1] for c in fake.calls[1:]]
    assert {c["module"] for c in candidates} == {"predict", "chain_of_thought"}
    for c in candidates:
        assert ("temperature" in c) == (c["module"] == "chain_of_thought")
    # A repeated suggestion ({"module": "predict"}) is told its score again, not re-sent.
    assert len({str(sorted(c.items())) for c in candidates}) == len(candidates)
    assert outcome.best_overrides is not None
    assert outcome.best_overrides["module"] == "chain_of_thought"


@pytest.mark.unit
async def test_an_empty_space_returns_the_baseline() -> None:
    fake = Fake()
    outcome = await runner(fake, variables=[]).run()
    assert len(fake.calls) == 1
    assert (outcome.best_overrides, outcome.best_score) == ({}, peaked({}))


@pytest.mark.unit
async def test_under_a_call_budget_trials_start_only_while_they_fit() -> None:
    reference = Fake()
    unlimited = await runner(reference).run()
    budget = unlimited.usage.calls // 2
    fake, log = Fake(), InMemoryCallLog()
    outcome = await runner(fake, log=log, budget=Budget(max_lm_calls=budget)).run()
    assert (outcome.status, outcome.stop_reason) == ("completed", "finished")
    assert budget - len(VAL) < outcome.usage.calls <= budget  # no room for one more
    assert outcome.details["stopped_for_budget"] == 1
    assert 0 < outcome.details["trials"] < unlimited.details["trials"] == 16
    assert unlimited.details["stopped_for_budget"] == 0
    # Every trial begun was answered: the calls are a prefix of the unlimited run's.
    assert fake.calls == reference.calls[: len(fake.calls)]
    assert outcome.best_score == pytest.approx(max(peaked(o) for o in fake.full()))
    # The budget is read between trials: a replay decides alike without a call.
    replay = Fake()
    replayed = await runner(replay, log=log, budget=Budget(max_lm_calls=budget)).run()
    assert replay.calls == []
    assert (replayed.best_overrides, replayed.best_score, replayed.details) == (
        outcome.best_overrides,
        outcome.best_score,
        outcome.details,
    )


@pytest.mark.unit
async def test_the_cost_of_a_trial_is_learned_from_the_calls_it_made() -> None:
    # Chain of thought costs three calls per example, which the baseline does not show.
    # The first trial (a minibatch of 8, then the other 12 of the valset: 60 calls) teaches
    # it. Every trial is promising here (keep_fraction 1): the second one's minibatch fits
    # (24 of 50 left), the rest of its valset at 3 calls per example (36) does not, though
    # at the baseline's one call per example (12) it would have seemed to, and overrun.
    fake = Fake(lambda overrides, split, indices: 0.5, cot_calls=3)  # all tie: all go on
    cot_only = [{**VARIABLES[0], "choices": ["chain_of_thought"]}, VARIABLES[2]]
    params = {"keep_fraction": 1.0}
    budget = Budget(max_lm_calls=130)
    outcome = await runner(fake, variables=cot_only, params=params, budget=budget).run()
    assert (outcome.status, outcome.details["stopped_for_budget"]) == ("completed", 1)
    assert (outcome.details["trials"], outcome.details["full_evaluations"]) == (1, 1)
    assert len(fake.minibatches()) == 2  # the second trial's ran; the sampler was not told
    assert outcome.usage.calls == 20 + (24 + 36) + 24


@pytest.mark.unit
async def test_same_seed_same_calls_and_a_crashed_run_replays_its_log() -> None:
    reference_fake = Fake()
    reference = await runner(reference_fake).run()
    again = Fake()
    await runner(again).run()
    assert again.calls == reference_fake.calls
    other = Fake()
    await runner(other, seed=4).run()
    assert other.calls != reference_fake.calls

    log = InMemoryCallLog()
    with pytest.raises(Crash):
        await runner(Fake(crash_at=12), log=log).run()
    recorded = set(log.numbers())
    assert {0, 11} <= recorded
    assert 12 not in recorded
    resumed = Fake()
    outcome = await runner(resumed, log=log).run()
    assert min(c[0] for c in resumed.calls) == 12  # replayed calls were not re-sent
    assert resumed.calls == [c for c in reference_fake.calls if c[0] >= 12]
    assert (outcome.best_overrides, outcome.best_score, outcome.evaluations) == (
        reference.best_overrides,
        reference.best_score,
        reference.evaluations,
    )


@pytest.mark.unit
@pytest.mark.parametrize(
    "params",
    [{"n_trials": -1}, {"minibatch_size": "8"}, {"keep_fraction": 1.5}, {"n_trials": True}],
)
async def test_beacon_rejects_bad_params(params: dict[str, Any]) -> None:
    outcome = await runner(Fake(), params=params).run()
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error["code"] == StrategyParamsError.code


# -- on math_qa with the simulated LM ----------------------------------------------------
@pytest.mark.integration
async def test_beacon_improves_math_qa_over_http(sim_lm: str, example_dir: Path) -> None:
    spec = ProgramSpec.load(example_dir / "program.yaml")
    train = load_examples(example_dir / "train.jsonl")[:40]
    dev = load_examples(example_dir / "dev.jsonl")[:40]
    client = LMClient(
        endpoint=Endpoint(api_base=sim_lm, api_key="sk-test"), cache=InMemoryLRUCache()
    )
    outcome: RunOutcome = await optimize(
        spec,
        train,
        dev,
        "numeric",
        runtime=Runtime(client),
        strategy="beacon",
        seed=0,
        params={"n_trials": 6},
    )
    print(
        f"beacon: baseline {outcome.baseline_score} -> {outcome.best_score} with "
        f"{outcome.best_overrides}, {outcome.evaluations} evaluations, {outcome.lm_calls} LM calls"
    )
    assert outcome.status == "completed"
    assert outcome.baseline_score is not None
    assert outcome.best_score is not None
    assert outcome.best_score >= outcome.baseline_score + 0.1
    assert outcome.best_overrides
