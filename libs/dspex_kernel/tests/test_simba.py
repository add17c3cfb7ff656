"""SIMBA: its moves and statistics (unit), whole runs against a fake evaluator and a
scripted prompt model (unit), and math_qa with the simulated LM over HTTP (integration)."""

from __future__ import annotations

import hashlib
import random
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from dspex_kernel import (
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
from dspex_kernel.strategies._simba_moves import (
    _poisson,
    bucket_order,
    percentile,
    sampling_temperatures,
)
from dspex_kernel.testing import Coverage, chat_reply, requested_evaluations

SPEC = ProgramSpec.from_data(
    {
        "name": "t",
        "stages": [{"name": "s", "module": "predict", "signature": "q -> a: int"}],
        "configuration": {"defaults": {"model": "m", "temperature": 0.0}},
        "variables": {
            "variables": [
                {"name": "t", "kind": "float", "path": "*.temperature", "low": 0.0, "high": 0.8}
            ]
        },
    }
)
TRAIN = [{"q": f"train {i}", "a": i, "difficulty": 0.5} for i in range(24)]
VAL = [{"q": f"val {i}", "a": i} for i in range(10)]
RULE = "RULE: add the numbers in order."


def quality(overrides: Mapping[str, Any]) -> float:
    """How good a configuration is: demos and the rule help."""
    demos = len(overrides.get("s.demos") or [])
    rule = RULE in str(overrides.get("s.instructions") or "")
    return min(0.9, 0.3 + 0.1 * demos + 0.25 * rule)


def draw(*parts: object) -> float:
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Fake:
    """Per-example success drawn from the configuration and the example; the valset gets
    the configuration's quality on every example. Records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], Split, tuple[int, ...], bool]] = []
        self.coverage, self.completes = Coverage({"train": len(TRAIN), "val": len(VAL)}), []

    async def __call__(
        self,
        call: int,
        overrides: Mapping[str, Any],
        split: Split,
        indices: tuple[int, ...],
        want_traces: bool,
    ) -> Evaluation:
        self.calls.append((dict(overrides), split, indices, want_traces))
        self.completes.append(self.coverage.add(overrides, split, indices))
        outcomes = []
        for i in indices:
            if split == "val":
                outcomes.append(ExampleOutcome(i, quality(overrides), {"a": i}))
                continue
            right = self.right(overrides, i)
            answer = i if right else i + 1
            trace = (
                {
                    "stage": "s",
                    "module": "predict",
                    "inputs": {"q": TRAIN[i]["q"]},
                    "outputs": {"a": answer},
                },
            )
            outcomes.append(
                ExampleOutcome(i, float(right), {"a": answer}, None, trace if want_traces else ())
            )
        score = sum(o.score for o in outcomes) / len(outcomes)
        usage = Usage(len(indices))  # one LM call per example
        return Evaluation(call, dict(overrides), split, indices, score, tuple(outcomes), usage)

    def right(self, overrides: Mapping[str, Any], i: int) -> bool:
        """Whether ``overrides`` gets training example ``i`` right."""
        return draw(repr(sorted(overrides.items())), i) < quality(overrides)

    def full_val(self) -> list[dict[str, Any]]:
        """The configurations scored on the full valset, in order."""
        return [
            c[0]
            for c, done in zip(self.calls, self.completes, strict=True)
            if done and c[1] == "val"
        ]


class PromptModel:
    def __init__(self, reply: str | None = None) -> None:
        self.requests: list[LMRequest] = []
        self.reply = reply if reply is not None else chat_reply(discussion="d", s_rule=RULE)

    async def __call__(self, call: int, request: LMRequest) -> LMResponse:
        self.requests.append(request)
        return LMResponse(self.reply, request.model, Usage(1))


SMALL = {"bsize": 8, "num_candidates": 3, "max_steps": 4}


async def run(
    fake: Fake,
    lm: PromptModel,
    params: Mapping[str, Any] | None = None,
    *,
    log: InMemoryCallLog | None = None,
    budget: Budget = Budget(),  # noqa: B008
) -> RunOutcome:
    runner = Runner(
        SPEC,
        TRAIN,
        VAL,
        strategy="simba",
        seed=7,
        params={**SMALL, **(params or {})},
        budget=budget,
        log=log if log is not None else InMemoryCallLog(),
        evaluate=fake,
        lm=lm,
    )
    return await runner.run()


# -- statistics and moves ------------------------------------------------------------------
@pytest.mark.unit
def test_percentile_interpolates_like_the_usual_definition() -> None:
    values = [0.0, 1.0, 1.0, 0.0, 0.5, 1.0, 0.25]
    for q in (0, 10, 50, 90, 100):
        expected = (
            statistics.quantiles(values, n=100, method="inclusive")[q - 1]
            if 0 < q < 100
            else (min(values) if q == 0 else max(values))
        )
        assert percentile(values, q) == pytest.approx(expected)


@pytest.mark.unit
def test_buckets_rank_by_gap_then_best_then_gap_to_mean() -> None:
    def outcomes(*scores: float) -> list[ExampleOutcome]:
        return [ExampleOutcome(0, s, {}) for s in scores]

    mixed, steady, rare = outcomes(1, 0, 0), outcomes(1, 1, 1), outcomes(1, 1, 0)
    assert bucket_order(mixed) == pytest.approx((1.0, 1.0, 2 / 3))
    ranked = sorted([steady, rare, mixed], key=bucket_order, reverse=True)
    assert ranked == [mixed, rare, steady]


@pytest.mark.unit
def test_poisson_draws_have_the_asked_mean() -> None:
    rng = random.Random(1)
    draws = [_poisson(rng.random, 0.75) for _ in range(20_000)]
    assert statistics.fmean(draws) == pytest.approx(0.75, abs=0.03)
    assert _poisson(rng.random, 0.0) == 0


@pytest.mark.unit
def test_sampling_temperatures_start_as_configured_and_stay_in_the_variable() -> None:
    temps = sampling_temperatures(SPEC, 6)
    assert temps[0] == {}
    values = [t["*.temperature"] for t in temps[1:]]
    assert values == sorted(set(values))
    assert min(values) == 0.5
    assert max(values) == 0.8


# -- whole runs ----------------------------------------------------------------------------
@pytest.mark.unit
async def test_simba_samples_builds_races_and_keeps_the_best_valset_score() -> None:
    fake, lm = Fake(), PromptModel()
    outcome = await run(fake, lm)
    assert outcome.status == "completed", outcome.error
    trajectories = [c for c in fake.calls if c[3]]
    assert trajectories
    assert all(c[1] == "train" for c in trajectories)
    temperatures = {c[0].get("*.temperature") for c in trajectories}
    assert None in temperatures
    assert len(temperatures) == 3
    # Rules come from the prompt model, which sees both trajectories of one example.
    assert lm.requests
    prompt = lm.requests[0].messages[-1]["content"]
    assert "better_trajectory" in prompt
    assert "worse_trajectory" in prompt
    assert all(r.model == "m" for r in lm.requests)
    # The winner is the best full-valset score, and it learned something.
    assert outcome.best_score == pytest.approx(max(quality(o) for o in fake.full_val()))
    assert outcome.best_overrides is not None
    assert outcome.best_score is not None
    assert outcome.best_score > quality({})
    details = outcome.details
    assert details["rules_written"] + details["demos_appended"] > 0


@pytest.mark.unit
async def test_simba_races_candidates_on_the_minibatch_only_when_asked() -> None:
    default, raced, unraced = Fake(), Fake(), Fake()
    await run(default, PromptModel(), {"final_candidates": 0})
    await run(raced, PromptModel(), {"race_minibatch": True, "final_candidates": 0})
    await run(unraced, PromptModel(), {"race": False, "final_candidates": 0})

    def candidate_batches(fake: Fake) -> set[int]:
        return {len(c[2]) for c in fake.calls if c[1] == "train" and not c[3]}

    # A candidate the moves left unchanged is a pool program: its trajectory at the
    # program's own temperature already scored some examples, which are not sent again.
    for fake in (default, unraced):
        assert max(candidate_batches(fake)) == SMALL["bsize"]
    assert {2, 4} <= candidate_batches(raced) <= {1, 2, 3, 4}  # quarter, quarter, half


@pytest.mark.unit
async def test_simba_final_selection_adds_the_training_examples_the_demos_did_not_come_from() -> (
    None
):
    fake, log = Fake(), InMemoryCallLog()
    outcome = await run(fake, PromptModel(), log=log)
    asked = await requested_evaluations(log)
    final = [c for c in asked if c[1] == "train" and len(c[2]) > SMALL["bsize"]]
    assert len(final) == outcome.details["finalists"] == 3
    for overrides, _, indices in final:
        sources = {d["q"] for d in overrides.get("s.demos", [])}
        assert {TRAIN[i]["q"] for i in indices}.isdisjoint(sources)
        assert len(indices) == len(TRAIN) - len(sources)
    assert outcome.best_overrides in [c[0] for c in final]

    # The winner has the best mean over its valset and training examples together.
    def mean_of(overrides: dict[str, Any], indices: tuple[int, ...]) -> float:
        train = [float(fake.right(overrides, i)) for i in indices]
        return (sum(train) + quality(overrides) * len(VAL)) / (len(train) + len(VAL))

    means = [mean_of(c[0], c[2]) for c in final]
    assert outcome.best_overrides == final[means.index(max(means))][0]


@pytest.mark.unit
async def test_simba_skips_a_rule_it_cannot_parse() -> None:
    fake = Fake()
    outcome = await run(fake, PromptModel("no fields here"), {"max_demos": 0})
    assert outcome.status == "completed"
    assert outcome.details["rules_written"] == 0
    assert all(RULE not in str(c[0].get("s.instructions", "")) for c in fake.calls)


@pytest.mark.unit
async def test_simba_budget_ends_the_run_with_the_best_so_far() -> None:
    # Too small for the first step: the run ends completed with the baseline.
    fake = Fake()
    outcome = await run(fake, PromptModel(), budget=Budget(max_lm_calls=40))
    assert (outcome.status, outcome.details["steps"]) == ("completed", 0)
    assert outcome.details["stopped_for_budget"] == 1
    assert outcome.usage.calls == len(VAL)
    assert outcome.best_score == pytest.approx(quality({}))


@pytest.mark.unit
async def test_under_a_call_budget_simba_takes_only_the_steps_that_fit() -> None:
    unlimited = await run(Fake(), PromptModel())
    assert (unlimited.details["steps"], unlimited.details["stopped_for_budget"]) == (4, 0)
    spent = unlimited.usage.calls
    for budget in (spent // 2, spent - 1):
        fake, log = Fake(), InMemoryCallLog()
        outcome = await run(fake, PromptModel(), log=log, budget=Budget(max_lm_calls=budget))
        assert (outcome.status, outcome.stop_reason) == ("completed", "finished")
        assert outcome.usage.calls <= budget
        assert outcome.details["stopped_for_budget"] == 1
        # A step or the final selection was left out, never cut off inside.
        assert outcome.details["steps"] < 4 or "finalists" not in outcome.details
        assert outcome.best_score == pytest.approx(max(quality(o) for o in fake.full_val()))
        # The budget is read between steps: a replay decides alike, without a call.
        again, lm = Fake(), PromptModel()
        replayed = await run(again, lm, log=log, budget=Budget(max_lm_calls=budget))
        assert (again.calls, lm.requests) == ([], [])
        assert (replayed.best_overrides, replayed.details) == (
            outcome.best_overrides,
            outcome.details,
        )


@pytest.mark.unit
async def test_a_tight_call_budget_buys_smaller_steps_not_fewer() -> None:
    unlimited = await run(Fake(), PromptModel())
    assert unlimited.details["steps"] == SMALL["max_steps"]
    assert unlimited.details["bsize"] == [SMALL["bsize"]] * SMALL["max_steps"]
    fake = Fake()
    budget = unlimited.usage.calls * 2 // 3
    outcome = await run(fake, PromptModel(), budget=Budget(max_lm_calls=budget))
    assert outcome.status == "completed"
    assert outcome.usage.calls <= budget
    sizes = outcome.details["bsize"]
    assert outcome.details["steps"] == len(sizes) == SMALL["max_steps"]
    assert min(sizes) < SMALL["bsize"]
    assert all(SMALL["num_candidates"] + 1 <= size <= SMALL["bsize"] for size in sizes)
    trajectories = [c[2] for c in fake.calls if c[1] == "train" and c[3]]
    candidates = [c[2] for c in fake.calls if c[1] == "train" and not c[3]]
    assert trajectories
    assert max(len(indices) for indices in trajectories) <= max(sizes)
    assert sum(len(indices) in sizes for indices in candidates) >= SMALL["max_steps"]
    # Below one example per candidate the batch shrinks no further: fewer steps instead.
    floor = await run(Fake(), PromptModel(), budget=Budget(max_lm_calls=budget // 3))
    assert floor.details["bsize"][0] == SMALL["num_candidates"] + 1
    assert floor.details["steps"] < SMALL["max_steps"]


@pytest.mark.unit
async def test_later_steps_are_sized_by_what_the_earlier_ones_cost() -> None:
    # The first step is sized for its dearest case (every example sampled at every
    # temperature, a full valset score); later ones by the costs measured so far, which
    # screening and early-stopped races keep lower: the same budget buys larger batches.
    unlimited = await run(Fake(), PromptModel(), {"max_steps": 6})
    budget = unlimited.usage.calls * 7 // 10
    outcome = await run(Fake(), PromptModel(), {"max_steps": 6}, budget=Budget(max_lm_calls=budget))
    sizes = outcome.details["bsize"]
    assert outcome.usage.calls <= budget
    assert len(sizes) == 6
    assert max(sizes[1:]) > sizes[0]


class Steady(Fake):
    """As ``Fake``, but every configuration gets each third training example right."""

    def right(self, overrides: Mapping[str, Any], i: int) -> bool:
        return i % 3 == 0 or super().right(overrides, i)


def trajectory_rows(fake: Fake) -> list[dict[int, list[tuple[Any, float]]]]:
    """Per step, each training example's trajectories as (temperature, score), from the
    calls with traces; a step's trajectories come after the previous step's candidates."""
    steps: list[dict[int, list[tuple[Any, float]]]] = []
    previous_traced = False
    for overrides, split, indices, traced in fake.calls:
        if not traced or split != "train":
            previous_traced = False
            continue
        if not previous_traced:
            steps.append({})
        previous_traced = True
        for i in indices:
            right = fake.right(overrides, i)
            steps[-1].setdefault(i, []).append((overrides.get("*.temperature"), float(right)))
    return steps


@pytest.mark.unit
async def test_only_examples_whose_coolest_and_hottest_trajectories_differ_get_the_rest() -> None:
    # One epoch of disjoint batches, so that no trajectory is answered from an earlier one.
    params = {"max_steps": 3, "final_candidates": 0}
    fake = Steady()
    outcome = await run(fake, PromptModel(), params)
    assert outcome.status == "completed"
    cool, middle, hot = (t.get("*.temperature") for t in sampling_temperatures(SPEC, 3))
    steps = trajectory_rows(fake)
    assert len(steps) == 3
    screened = varied = 0
    for rows in steps:
        assert len(rows) == SMALL["bsize"]
        for i, samples in rows.items():
            by_temperature = dict(samples)
            assert len(by_temperature) == len(samples)
            if by_temperature[cool] == by_temperature[hot]:
                assert set(by_temperature) == {cool, hot}
                screened += 1
            else:
                assert set(by_temperature) == {cool, middle, hot}
                varied += 1
            if i % 3 == 0:
                assert set(by_temperature) == {cool, hot}
    assert screened
    assert varied
    # Unscreened, every example gets every temperature.
    fake = Steady()
    await run(fake, PromptModel(), {**params, "screen_trajectories": False})
    for rows in trajectory_rows(fake):
        assert all(len(samples) == 3 for samples in rows.values())


@pytest.mark.unit
async def test_simba_replays_to_the_same_outcome_without_new_calls() -> None:
    log = InMemoryCallLog()
    done = await run(Fake(), PromptModel(), log=log)
    again, lm = Fake(), PromptModel()
    replayed = await run(again, lm, log=log)
    assert again.calls == []
    assert lm.requests == []
    assert (replayed.best_overrides, replayed.best_score) == (done.best_overrides, done.best_score)


@pytest.mark.unit
@pytest.mark.parametrize(
    "params",
    [
        {"bsize": 0},
        {"race": "yes"},
        {"race_minibatch": 1},
        {"temperature_for_sampling": 0},
        {"prompt_model": ""},
    ],
)
async def test_simba_rejects_bad_params(params: dict[str, Any]) -> None:
    outcome = await run(Fake(), PromptModel(), {**params, "max_demos": 0})
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error["code"] == StrategyParamsError.code


# -- on math_qa with the simulated LM ----------------------------------------------------
@pytest.mark.integration
async def test_simba_improves_math_qa_over_http_and_repeats_itself(
    sim_lm: str, example_dir: Path
) -> None:
    spec = ProgramSpec.load(example_dir / "program.yaml")
    train = load_examples(example_dir / "train.jsonl")[:96]
    dev = load_examples(example_dir / "dev.jsonl")[:60]
    params = {"bsize": 16, "num_candidates": 4, "max_steps": 3}
    outcomes = []
    for _ in range(2):
        client = LMClient(
            endpoint=Endpoint(api_base=sim_lm, api_key="sk-test"), cache=InMemoryLRUCache()
        )
        outcomes.append(
            await optimize(
                spec,
                train,
                dev,
                "numeric",
                runtime=Runtime(client),
                strategy="simba",
                seed=0,
                params=params,
            )
        )
        assert client.usage.calls == outcomes[-1].lm_calls
    first, second = outcomes
    print(f"simba: {first.baseline_score} -> {first.best_score}, {first.lm_calls} calls")
    assert first.status == "completed"
    assert first.best_score is not None
    assert first.baseline_score is not None
    assert first.best_score >= first.baseline_score + 0.1
    assert (second.best_overrides, second.best_score) == (first.best_overrides, first.best_score)
