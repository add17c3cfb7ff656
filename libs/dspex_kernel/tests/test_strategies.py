"""The strategies: the registry, random search and bootstrap against a fake evaluator
(unit), then both on math_qa with the simulated LM over HTTP (integration)."""

from __future__ import annotations

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
    UnknownStrategyError,
    Usage,
    get_strategy,
    load_examples,
    optimize,
)
from dspex_kernel.cache import InMemoryLRUCache
from dspex_kernel.strategies import Split, StrategyParamsError
from dspex_kernel.testing import Coverage

SPEC_DATA: dict[str, Any] = {
    "name": "t",
    "stages": [{"name": "s", "module": "predict", "signature": "q -> a: int"}],
    "configuration": {"defaults": {"model": "m"}},
}
TRAIN = [{"q": f"train {i}", "a": i} for i in range(40)]
VAL = [{"q": f"val {i}", "a": i} for i in range(5)]
Score = Callable[[Mapping[str, Any]], float]


def spec_with(variables: list[dict[str, Any]] | None = None, **changes: Any) -> ProgramSpec:
    data = {**SPEC_DATA, **changes}
    if variables is not None:
        data["variables"] = {"variables": variables}
    return ProgramSpec.from_data(data)


class Fake:
    """Training runs: even examples succeed, with a traced reasoning; valset scores come
    from ``val_score(overrides)``. Records every call."""

    def __init__(self, val_score: Score, *, stages: tuple[str, ...] = ("s",)) -> None:
        self.val_score, self.stages = val_score, stages
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
        if split == "train":
            outcomes = tuple(self._trained(i, want_traces) for i in indices)
            score = sum(o.score for o in outcomes) / len(outcomes)
        else:
            score = self.val_score(overrides)
            outcomes = tuple(ExampleOutcome(i, score, {"a": i}) for i in indices)
        return Evaluation(call, dict(overrides), split, indices, score, outcomes, Usage(1))

    def _trained(self, i: int, want_traces: bool) -> ExampleOutcome:
        q, a = TRAIN[i]["q"], TRAIN[i]["a"]
        trace = [
            {
                "stage": name,
                "module": "predict",
                "inputs": {"q": q, "hint_": "x"},
                "outputs": {"reasoning": f"why {i}", "a": a, "plan": f"plan {i}"},
            }
            for name in self.stages
        ]
        return ExampleOutcome(
            i, 1.0 if i % 2 == 0 else 0.0, {"a": a}, None, tuple(trace) if want_traces else ()
        )

    @property
    def valset_calls(self) -> list[dict[str, Any]]:
        pairs = zip(self.calls, self.completes, strict=True)
        return [c[0] for c, done in pairs if done and c[1] == "val"]


async def never_lm(call: int, request: LMRequest) -> LMResponse:
    raise AssertionError("these strategies make no LM calls of their own")


async def run(
    spec: ProgramSpec,
    fake: Fake,
    strategy: str,
    params: Mapping[str, Any] | None = None,
    **kw: Any,
) -> RunOutcome:
    runner = Runner(
        spec,
        TRAIN,
        VAL,
        strategy=strategy,
        seed=3,
        params=params,
        log=InMemoryCallLog(),
        evaluate=fake,
        lm=never_lm,
        **kw,
    )
    return await runner.run()


# -- the registry ------------------------------------------------------------------------
@pytest.mark.unit
def test_registry_names_the_known_strategies() -> None:
    assert set(STRATEGIES) == {"beacon", "bootstrap", "mipro", "random", "simba"}
    assert get_strategy("random") is STRATEGIES["random"]
    with pytest.raises(UnknownStrategyError, match=r"'gepa'.*mipro, random, simba") as info:
        get_strategy("gepa")
    assert (info.value.code, info.value.status) == ("unknown_strategy", 400)


# -- random search -----------------------------------------------------------------------
VARIABLES: list[dict[str, Any]] = [
    {"name": "k", "kind": "int", "path": "s.max_tokens", "low": 1, "high": 60, "initial": 30},
    {
        "name": "module",
        "kind": "choice",
        "path": "s.module",
        "choices": ["predict", "chain_of_thought"],
    },
    {
        "name": "temperature",
        "kind": "float",
        "path": "*.temperature",
        "low": 0.0,
        "high": 1.0,
        "condition": {"variable": "module", "in": ["chain_of_thought"]},
    },
]


@pytest.mark.unit
async def test_random_with_an_empty_space_returns_the_baseline() -> None:
    fake = Fake(lambda o: 0.3)
    outcome = await run(spec_with(), fake, "random")
    assert (outcome.best_overrides, outcome.best_score, outcome.best_call) == ({}, 0.3, 0)
    assert len(fake.calls) == 1


@pytest.mark.unit
async def test_random_scores_defaults_and_samples_and_keeps_the_best() -> None:
    spec = spec_with(VARIABLES)
    fake = Fake(lambda o: o.get("k", 10) / 100)
    outcome = await run(spec, fake, "random", {"n_candidates": 6})
    candidates = fake.valset_calls[1:]
    assert candidates[0] == {"k": 30, "module": "predict"}  # the space's defaults first
    assert len(candidates) == 6
    for candidate in candidates:
        spec.variables.validate_assignment(candidate)
    best = max(candidates, key=lambda c: c["k"])
    assert (outcome.best_overrides, outcome.best_score) == (best, best["k"] / 100)
    assert outcome.status == "completed"


@pytest.mark.unit
async def test_random_ties_go_to_the_earlier_and_the_baseline_comes_first() -> None:
    fake = Fake(lambda o: 0.5 if o else 0.2)
    outcome = await run(spec_with(VARIABLES), fake, "random", {"n_candidates": 4})
    assert outcome.best_overrides == fake.valset_calls[1]
    fake = Fake(lambda o: 0.2)
    outcome = await run(spec_with(VARIABLES), fake, "random", {"n_candidates": 4})
    assert (outcome.best_overrides, outcome.best_call) == ({}, 0)


@pytest.mark.unit
async def test_random_minibatch_scores_candidates_on_one_batch_then_the_leader_fully() -> None:
    fake = Fake(lambda o: o.get("k", 0) / 100)
    outcome = await run(spec_with(VARIABLES), fake, "random", {"n_candidates": 5, "minibatch": 2})
    batch_calls = [c for c in fake.calls if len(c[2]) == 2]
    assert len(batch_calls) == 5
    assert len({c[2] for c in batch_calls}) == 1
    leader = max((c[0] for c in batch_calls), key=lambda o: o["k"])
    assert fake.valset_calls == [{}, leader]
    assert (outcome.best_overrides, outcome.best_score) == (leader, leader["k"] / 100)


@pytest.mark.unit
async def test_random_rejects_bad_params() -> None:
    outcome = await run(spec_with(VARIABLES), Fake(lambda o: 0.1), "random", {"n_candidates": -1})
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error["code"] == StrategyParamsError.code


# -- bootstrap ---------------------------------------------------------------------------
def bootstrapped_count(overrides: Mapping[str, Any], path: str = "s.demos") -> float:
    demos = overrides.get(path, [])
    return 0.1 + 0.1 * sum("reasoning" in d for d in demos) + 0.01 * len(demos)


def train_calls(fake: Fake) -> list[tuple[dict[str, Any], Split, tuple[int, ...], bool]]:
    return [c for c in fake.calls if c[1] == "train"]


@pytest.mark.unit
async def test_bootstrap_builds_dspy_style_candidate_sets_from_the_trainset_only() -> None:
    fake = Fake(bootstrapped_count)
    params = {"bootstrap_batch": 4, "bootstrap_pool": 4, "race": False}
    outcome = await run(spec_with(), fake, "bootstrap", params)
    # The teacher ran in batches until four examples (the even ones) succeeded.
    assert [(c[2], c[3]) for c in train_calls(fake)] == [((0, 1, 2, 3), True), ((4, 5, 6, 7), True)]
    candidates = fake.valset_calls[1:]
    assert 3 <= len(candidates) <= 8  # labeled, unshuffled, 6 shuffled; repeats dropped
    assert all(set(c) == {"s.demos"} for c in candidates)
    labeled, unshuffled = candidates[0]["s.demos"], candidates[1]["s.demos"]
    assert all(d in TRAIN for d in labeled)
    assert len(labeled) == 4
    assert [d["q"] for d in unshuffled] == ["train 0", "train 2", "train 4", "train 6"]
    assert unshuffled[0] == {"q": "train 0", "reasoning": "why 0", "a": 0, "plan": "plan 0"}
    shown = [d for c in candidates for d in c["s.demos"]]
    assert not any(d["q"].startswith("val") for d in shown)
    assert all(len(c["s.demos"]) <= 4 for c in candidates)
    # Mixes of bootstrapped and labeled demos appear among the shuffled sets.
    assert any(0 < sum("reasoning" in d for d in c["s.demos"]) < 4 for c in candidates[2:])
    assert any(any("reasoning" not in d for d in c["s.demos"]) for c in candidates[2:])
    assert (outcome.best_overrides, outcome.best_score) == (candidates[1], 0.54)
    assert outcome.details["bootstrapped"] == 4


@pytest.mark.unit
async def test_bootstrap_skips_the_zero_shot_set_only_when_it_is_the_baseline() -> None:
    fake = Fake(bootstrapped_count)
    await run(spec_with(), fake, "bootstrap", {"num_candidate_sets": 0, "race": False})
    assert all(c["s.demos"] for c in fake.valset_calls[1:])
    configured = {"defaults": {"model": "m"}, "stages": {"s": {"demos": [TRAIN[1]]}}}
    fake = Fake(bootstrapped_count)
    params = {"num_candidate_sets": 0, "race": False}
    await run(spec_with(configuration=configured), fake, "bootstrap", params)
    assert fake.valset_calls[1] == {"s.demos": []}


@pytest.mark.unit
async def test_bootstrap_teacher_overrides_rounds_threshold_and_demo_limit() -> None:
    variables = [{"name": "demos", "kind": "demos", "path": "s.demos", "max_demos": 2}]
    fake = Fake(bootstrapped_count)
    params = {
        "teacher": {"s.module": "chain_of_thought"},
        "max_rounds": 2,
        "bootstrap_batch": 8,
        "metric_threshold": 0.5,
    }
    await run(spec_with(variables), fake, "bootstrap", params)
    first, second = train_calls(fake)[:2]
    assert first[0] == {"s.module": "chain_of_thought"}
    assert first[2] == tuple(range(8))
    assert second[0] == {"s.module": "chain_of_thought", "*.temperature": 1.0}
    assert second[2] == (1, 3, 5, 7)  # only the failures are retried
    assert all(len(c["s.demos"]) <= 2 for c in fake.valset_calls[1:])


@pytest.mark.unit
async def test_bootstrap_gives_demos_to_every_lm_stage_and_none_to_retrieval() -> None:
    stages = [
        {"name": "look", "module": "retrieve", "signature": "q -> passages: list[str]"},
        {"name": "draft", "module": "predict", "signature": "q, passages -> plan"},
        {"name": "s", "module": "chain_of_thought", "signature": "q, plan -> a: int"},
    ]
    fake = Fake(lambda o: bootstrapped_count(o, "draft.demos"), stages=("draft", "s"))
    outcome = await run(spec_with(stages=stages), fake, "bootstrap", {"race": False})
    candidates = fake.valset_calls[1:]
    assert all(set(c) == {"draft.demos", "s.demos"} for c in candidates)
    # The examples label no plan: the draft stage only gets bootstrapped demos.
    assert all("reasoning" in d for c in candidates for d in c["draft.demos"])
    assert any(
        d == {"q": TRAIN[i]["q"], "a": i}
        for c in candidates
        for d in c["s.demos"]
        for i in range(len(TRAIN))
    )
    assert outcome.best_overrides is not None
    assert len(outcome.best_overrides["draft.demos"]) == 4


@pytest.mark.unit
async def test_bootstrap_races_the_sets_on_half_the_valset_first() -> None:
    fake = Fake(bootstrapped_count)
    outcome = await run(spec_with(), fake, "bootstrap", {"bootstrap_batch": 4})
    screened = [c[0] for c in fake.calls if c[1] == "val" and c[2] == (0, 1)]
    finalists = fake.valset_calls[1:]
    assert len(screened) >= 6  # every candidate set met the first half of the valset
    assert 1 <= len(finalists) <= -(-len(screened) // 3) + 2  # the top third, ties kept
    assert all(f in screened for f in finalists)
    best = max(bootstrapped_count(c) for c in screened)
    assert outcome.best_score == best  # the best set is among the finalists
    assert outcome.details["finalists"] == len(finalists)


@pytest.mark.unit
async def test_bootstrap_lets_a_budget_end_the_run_with_the_best_so_far() -> None:
    fake = Fake(bootstrapped_count)
    outcome = await run(spec_with(), fake, "bootstrap", budget=Budget(max_lm_calls=4))
    assert (outcome.status, outcome.stop_reason) == ("budget_exhausted", "max_lm_calls")
    assert len(fake.calls) == 4
    assert outcome.best_score == max(bootstrapped_count(c) for c in fake.valset_calls)


@pytest.mark.unit
async def test_bootstrap_replays_to_the_same_outcome() -> None:
    log, first = InMemoryCallLog(), Fake(bootstrapped_count)
    runner = Runner(
        spec_with(), TRAIN, VAL, strategy="bootstrap", seed=5, log=log, evaluate=first, lm=never_lm
    )
    done = await runner.run()
    again = Fake(bootstrapped_count)
    replayed = await Runner(
        spec_with(), TRAIN, VAL, strategy="bootstrap", seed=5, log=log, evaluate=again, lm=never_lm
    ).run()
    assert again.calls == []
    assert (replayed.best_overrides, replayed.best_score) == (done.best_overrides, done.best_score)


# -- on math_qa with the simulated LM ----------------------------------------------------
async def optimize_math_qa(
    sim_lm: str, example_dir: Path, strategy: str, params: Mapping[str, Any]
) -> RunOutcome:
    spec = ProgramSpec.load(example_dir / "program.yaml")
    train = load_examples(example_dir / "train.jsonl")[:64]
    dev = load_examples(example_dir / "dev.jsonl")[:60]
    client = LMClient(
        endpoint=Endpoint(api_base=sim_lm, api_key="sk-test"), cache=InMemoryLRUCache()
    )
    outcome = await optimize(
        spec,
        train,
        dev,
        "numeric",
        runtime=Runtime(client),
        strategy=strategy,
        seed=0,
        params=params,
    )
    print(
        f"{strategy}: baseline {outcome.baseline_score:.3f} -> best {outcome.best_score:.3f} "
        f"with {sorted(outcome.best_overrides or {})}, {outcome.evaluations} evaluations, "
        f"{outcome.lm_calls} LM calls ({outcome.cached_calls} cached)"
    )
    assert outcome.status == "completed"
    assert client.usage.calls == outcome.lm_calls
    return outcome


@pytest.mark.integration
async def test_bootstrap_improves_math_qa_over_http(sim_lm: str, example_dir: Path) -> None:
    outcome = await optimize_math_qa(sim_lm, example_dir, "bootstrap", {})
    assert outcome.baseline_score is not None
    assert outcome.best_score is not None
    assert outcome.best_score >= outcome.baseline_score + 0.1
    assert outcome.best_overrides is not None
    assert outcome.best_overrides["solve.demos"]


@pytest.mark.integration
async def test_random_search_improves_math_qa_over_http(sim_lm: str, example_dir: Path) -> None:
    outcome = await optimize_math_qa(sim_lm, example_dir, "random", {"n_candidates": 6})
    assert outcome.baseline_score is not None
    assert outcome.best_score is not None
    assert outcome.best_score >= outcome.baseline_score + 0.1
