"""The ``mipro`` strategy: instruction proposals, demo sets and TPE trials against a fake
evaluator and a scripted prompt model (unit), then on math_qa with the simulated LM over
HTTP (integration)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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
from dspex_kernel.strategies import Split, StrategyContext, StrategyParamsError
from dspex_kernel.strategies._instructions import TIPS
from dspex_kernel.strategies.mipro import mipro
from dspex_kernel.testing import Coverage, chat_reply, requested_evaluations, requested_fields

ORIGINAL = "Answer the question."
SPEC_DATA: dict[str, Any] = {
    "name": "t",
    "description": "Answers numbered questions.",
    "stages": [
        {
            "name": "s",
            "module": "predict",
            "signature": {
                "inputs": [{"name": "q"}],
                "outputs": [{"name": "a", "type": "int"}],
                "instructions": ORIGINAL,
            },
        }
    ],
    "configuration": {"defaults": {"model": "m"}},
}
TRAIN = [{"q": f"train {i}", "a": i, "_note": "metadata"} for i in range(40)]
VAL = [{"q": f"val {i}", "a": i} for i in range(20)]
Call = tuple[dict[str, Any], Split, tuple[int, ...]]


def spec_with(**changes: Any) -> ProgramSpec:
    return ProgramSpec.from_data({**SPEC_DATA, **changes})


def quality(overrides: Mapping[str, Any], index: int) -> float:
    """Instructions saying "good" help, demos help a little, every third example is easier."""
    score = 0.2 + 0.05 * len(overrides.get("s.demos", []))
    if "good" in overrides.get("s.instructions", ""):
        score += 0.4
    return min(1.0, score + (0.1 if index % 3 == 0 else 0.0))


class Fake:
    """Training runs: even examples succeed, with a trace; valset scores per example come
    from ``quality``. Records every call."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.coverage, self.completes = Coverage({"train": len(TRAIN), "val": len(VAL)}), []

    async def __call__(
        self,
        call: int,
        overrides: Mapping[str, Any],
        split: Split,
        indices: tuple[int, ...],
        want_traces: bool,
    ) -> Evaluation:
        self.calls.append((dict(overrides), split, indices))
        self.completes.append(self.coverage.add(overrides, split, indices))
        outcomes = tuple(self._outcome(overrides, split, i, want_traces) for i in indices)
        score = sum(o.score for o in outcomes) / len(outcomes)
        # One LM call per example scored, as the program has one stage.
        return Evaluation(
            call, dict(overrides), split, indices, score, outcomes, Usage(len(indices))
        )

    def _outcome(
        self, overrides: Mapping[str, Any], split: Split, i: int, want_traces: bool
    ) -> ExampleOutcome:
        if split == "val":
            return ExampleOutcome(i, quality(overrides, i), {"a": i})
        entry = {
            "stage": "s",
            "module": "predict",
            "inputs": {"q": TRAIN[i]["q"]},
            "outputs": {"a": i},
        }
        trace = (entry,) if want_traces else ()
        return ExampleOutcome(i, 1.0 if i % 2 == 0 else 0.0, {"a": i}, None, trace)

    def val(self) -> list[Call]:
        return [c for c in self.calls if c[1] == "val"]

    def full(self) -> list[dict[str, Any]]:
        """The configurations scored on the full valset, in order."""
        return [
            c[0]
            for c, done in zip(self.calls, self.completes, strict=True)
            if done and c[1] == "val"
        ]

    def minibatches(self) -> list[Call]:
        pairs = zip(self.calls, self.completes, strict=True)
        return [c for c, done in pairs if not done and c[1] == "val"]


class PromptModel:
    """A scripted prompt model: proposals come from ``proposals`` in turn (then numbered
    "good" ones); data observations and summaries are fixed sentences."""

    def __init__(self, proposals: Sequence[str] = ()) -> None:
        self.proposals = list(proposals)
        self.requests: list[LMRequest] = []

    async def __call__(self, call: int, request: LMRequest) -> LMResponse:
        self.requests.append(request)
        fields = requested_fields(request)
        if fields == ["proposed_instruction"]:
            n = len(self.proposal_requests())
            text = self.proposals[n - 1] if n <= len(self.proposals) else None
            reply = text if text is not None else chat_reply(proposed_instruction=f"good {n}")
        elif fields == ["observations"]:
            reply = chat_reply(observations="Questions are numbered; answers are integers.")
        else:
            reply = chat_reply(summary="Numbered questions with integer answers.")
        return LMResponse(reply, request.model, Usage(1))

    def proposal_requests(self) -> list[LMRequest]:
        return [r for r in self.requests if requested_fields(r) == ["proposed_instruction"]]


def runner(
    fake: Fake,
    lm: PromptModel,
    params: Mapping[str, Any] | None = None,
    *,
    spec: ProgramSpec | None = None,
    seed: int = 3,
    log: InMemoryCallLog | None = None,
    **kw: Any,
) -> Runner:
    return Runner(
        spec or spec_with(),
        TRAIN,
        VAL,
        strategy=mipro,
        seed=seed,
        params={"minibatch_size": 5, **(params or {})},
        log=log if log is not None else InMemoryCallLog(),
        evaluate=fake,
        lm=lm,
        **kw,
    )


def user_text(request: LMRequest) -> str:
    return str(request.messages[-1]["content"])


# -- instruction proposals -----------------------------------------------------------------
@pytest.mark.unit
async def test_instruction_candidates_start_with_the_original_and_skip_bad_replies() -> None:
    lm = PromptModel(
        [
            chat_reply(proposed_instruction="good and plain"),
            "no field markers at all",
            chat_reply(proposed_instruction="   "),
            chat_reply(proposed_instruction='"good and plain"'),  # a repeat, once unquoted
            chat_reply(proposed_instruction="fair"),
        ]
    )
    fake = Fake()
    params = {"num_instruction_candidates": 6, "num_trials": 30, "tip_seed": 1}
    outcome = await runner(fake, lm, params).run()
    assert outcome.status == "completed"
    assert outcome.details["instruction_candidates"] == {"s": 3}
    assert outcome.details["proposals_skipped"] == 3
    tried = {c[0].get("s.instructions", ORIGINAL) for c in fake.val()}
    assert tried == {ORIGINAL, "good and plain", "fair"}
    assert outcome.best_overrides is not None
    assert outcome.best_overrides["s.instructions"] == "good and plain"

    requests = lm.proposal_requests()
    assert len(requests) == 5  # the current instruction costs no call
    first, last = user_text(requests[0]), user_text(requests[-1])
    assert ORIGINAL in first
    assert "None yet." in first
    assert "Numbered questions with integer answers." in first  # the data summary
    assert "stage 's' (predict)" in first  # the program
    assert "q: train" in first  # demos from the trainset only
    assert "q: val" not in first
    assert "1. good and plain" in last  # the earlier proposals
    assert "fair" not in last
    temperatures = [r.temperature or 0.0 for r in requests]
    assert len(set(temperatures)) == 5
    assert max(temperatures) == 1.0
    assert all(
        any(tip and tip in user_text(r) for tip in TIPS) or "None." in user_text(r)
        for r in requests
    )


@pytest.mark.unit
async def test_the_data_summary_observes_training_fields_in_a_bounded_number_of_calls() -> None:
    lm = PromptModel()
    params = {"data_summary_batches": 3, "view_data_batch_size": 4}
    await runner(Fake(), lm, params).run()
    observe = [r for r in lm.requests if requested_fields(r) == ["observations"]]
    summarize = [r for r in lm.requests if requested_fields(r) == ["summary"]]
    assert (len(observe), len(summarize)) == (3, 1)
    shown = [user_text(r).count("q: train") for r in observe]
    assert shown == [4, 4, 4]
    assert not any("_note" in user_text(r) for r in observe)  # only the program's fields

    lm = PromptModel()
    await runner(Fake(), lm, {"data_summary_batches": 0}).run()
    assert {tuple(requested_fields(r)) for r in lm.requests} == {("proposed_instruction",)}
    assert "Not available." in user_text(lm.requests[0])


@pytest.mark.unit
async def test_the_tip_seed_fixes_the_tips_whatever_the_run_seed() -> None:
    chosen = []
    for seed in (1, 2):
        lm = PromptModel()
        await runner(Fake(), lm, {"tip_seed": 7, "num_instruction_candidates": 5}, seed=seed).run()
        requests = lm.proposal_requests()
        chosen.append([next((t for t in TIPS[1:] if t in user_text(r)), "") for r in requests])
    assert chosen[0] == chosen[1]
    assert len(set(chosen[0])) > 1


# -- the search ----------------------------------------------------------------------------
@pytest.mark.unit
async def test_trials_score_minibatches_and_the_best_mean_gets_a_full_evaluation() -> None:
    fake, notes = Fake(), list[str]()
    params = {"num_trials": 10, "minibatch_full_eval_steps": 3, "race": False}
    ctx = context(fake, params, notes)
    result = await mipro(ctx)
    trials = [n for n in notes if n.startswith("mipro: trial ")]
    assert len(trials) == 10
    # A full evaluation follows trials 3, 6, 9 and the last one (unless no candidate is left).
    events = [n for n in notes if n in trials or "full evaluation" in n]
    after = [
        int(events[i - 1].split()[2].split("/")[0]) for i, n in enumerate(events) if "full" in n
    ]
    assert after
    assert set(after) <= {3, 6, 9, 10}
    assert result.details["full_evaluations"] == len(after) == len(fake.full()) - 1
    batches = fake.minibatches()
    assert batches
    assert all(len(c[2]) <= 5 and len(set(c[2])) == len(c[2]) for c in batches)
    # Every fully evaluated configuration was tried on a minibatch first; the first one is
    # the best of the (distinct, here) configurations the first three trials tried, the
    # baseline aside: it has a full score, and its minibatch scores cost no call.
    for full in fake.full()[1:]:
        assert any(c[0] == full for c in batches)
    calls = fake.val()[1:]
    first_full = next(i for i, c in enumerate(calls) if c[2] == tuple(range(len(VAL))))
    before = calls[:first_full]
    assert 1 <= len(before) <= 3
    assert len({repr(c[0]) for c in before}) == len(before)
    # Minibatch scores are read against the baseline's on the same examples.
    means = [sum(quality(c[0], i) - quality({}, i) for i in c[2]) / len(c[2]) for c in before]
    assert calls[first_full][0] == before[means.index(max(means))][0]
    assert result.score == max(quality_mean(o) for o in [{}, *fake.full()])
    assert result.details["trials"] == 10


def skill(overrides: Mapping[str, Any]) -> float:
    return quality(overrides, 1) / 2


class Skewed(Fake):
    """Valset scores: the configuration's ``skill``, plus a half for every configuration on
    the first half of the valset (easy examples)."""

    def _outcome(
        self, overrides: Mapping[str, Any], split: Split, i: int, want_traces: bool
    ) -> ExampleOutcome:
        if split != "val":
            return super()._outcome(overrides, split, i, want_traces)
        easy = 0.5 if i < len(VAL) // 2 else 0.0
        return ExampleOutcome(i, skill(overrides) + easy, {"a": i})


@pytest.mark.unit
async def test_minibatch_scores_are_read_against_the_baseline_on_the_same_examples() -> None:
    # Minibatches differ in how many easy examples they hold. Paired with the baseline's
    # scores on the same examples, the configuration with the best skill leads; the raw
    # mean (``paired: false``) favours the one that drew the easiest minibatch.
    leaders, told = {}, {}
    for paired in (True, False):
        fake, notes = Skewed(), list[str]()
        params = {"num_trials": 4, "minibatch_full_eval_steps": 4, "race": False}
        await mipro(context(fake, {**params, "paired": paired}, notes))
        calls = fake.val()[1:]
        first_full = next(i for i, c in enumerate(calls) if len(c[2]) == len(VAL))
        trials = calls[:first_full]
        assert len({repr(c[0]) for c in trials}) == len(trials) == 4
        raw = [sum(skill(c[0]) + 0.5 * (i < len(VAL) // 2) for i in c[2]) / 5 for c in trials]
        estimate = [skill(c[0]) - skill({}) + quality_of(fake, {}) for c in trials]
        expected = estimate if paired else raw
        best = trials[expected.index(max(expected))][0]
        assert calls[first_full][0] == best
        leaders[paired] = best
        told[paired] = [float(n.split()[-1]) for n in notes if n.startswith("mipro: trial ")]
        assert told[paired] == pytest.approx([round(x, 3) for x in expected], abs=1e-3)
    assert leaders[True] != leaders[False]


def quality_of(fake: Fake, overrides: Mapping[str, Any]) -> float:
    """The mean valset score ``fake`` gives ``overrides``."""
    scores = [fake._outcome(overrides, "val", i, False).score for i in range(len(VAL))]
    return sum(scores) / len(scores)


@pytest.mark.unit
async def test_no_configuration_is_scored_twice_on_an_example() -> None:
    fake = Fake()
    outcome = await runner(fake, PromptModel(), {"num_trials": 40, "race": False}).run()
    assert outcome.status == "completed"
    assert {} not in [c[0] for c in fake.val()[1:]]  # the baseline is the runner's call 0
    everything = tuple(range(len(VAL)))
    scored: dict[str, set[int]] = {}
    for overrides, _, indices in fake.val():
        seen = scored.setdefault(repr(sorted(overrides.items())), set())
        if indices == everything:
            assert len(seen) < len(VAL)  # never two full evaluations of one configuration
        else:
            assert not seen & set(indices)
        seen |= set(indices)
    assert outcome.details["example_scores_reused"] > 0
    assert outcome.details["minibatch_evaluations_reused"] >= 1


@pytest.mark.unit
async def test_without_minibatches_every_trial_is_a_full_evaluation() -> None:
    fake = Fake()
    outcome = await runner(fake, PromptModel(), {"minibatch_size": 0, "num_trials": 12}).run()
    assert fake.minibatches() == []
    fulls = [repr(sorted(o.items())) for o in fake.full()]
    assert len(fulls) == len(set(fulls)) <= 13
    assert outcome.details["minibatch_size"] == 0
    assert outcome.best_score == max(quality_mean(o) for o in fake.full())
    outcome = await runner(Fake(), PromptModel(), {"minibatch_size": len(VAL)}).run()
    assert outcome.details["minibatch_size"] == 0  # a minibatch as large as the valset


@pytest.mark.unit
async def test_demo_sets_come_from_the_trainset_with_the_current_demos_first() -> None:
    configured = {"defaults": {"model": "m"}, "stages": {"s": {"demos": [dict(TRAIN[1])]}}}
    fake = Fake()
    spec = spec_with(configuration=configured)
    outcome = await runner(fake, PromptModel(), {"num_trials": 30}, spec=spec).run()
    demo_sets = [c[0]["s.demos"] for c in fake.val() if "s.demos" in c[0]]
    assert demo_sets
    # The current demos, zero-shot, labeled only, unshuffled and three shuffled sets.
    assert outcome.details["demo_sets"] == {"s": 7}
    assert [TRAIN[1]] not in demo_sets  # the current demos are chosen by leaving them be
    shown = [d for demos in demo_sets for d in demos]
    assert all(d["q"].startswith("train") for d in shown)
    assert all(len(demos) <= 4 for demos in demo_sets)
    assert outcome.details["bootstrapped"] == 16


@pytest.mark.unit
async def test_every_lm_stage_gets_its_own_choices() -> None:
    stages = [
        {"name": "look", "module": "retrieve", "signature": "q -> passages: list[str]"},
        {"name": "draft", "module": "predict", "signature": "q, passages -> plan"},
        {"name": "s", "module": "chain_of_thought", "signature": "q, plan -> a: int"},
    ]
    fake, lm = Fake(), PromptModel()
    outcome = await runner(fake, lm, {"num_candidates": 4}, spec=spec_with(stages=stages)).run()
    assert outcome.status == "completed"
    assert set(outcome.details["instruction_candidates"]) == {"draft", "s"}
    steps = [user_text(r).split("[[ ## step ## ]]")[1].split()[0] for r in lm.proposal_requests()]
    assert steps == ["draft:", "s:"] * 3  # a round asks for one proposal per stage
    keys = {k for c in fake.val() for k in c[0]}
    assert keys <= {"draft.instructions", "draft.demos", "s.instructions", "s.demos"}
    assert outcome.details["trials"] == math.floor(max(2 * 4 * math.log2(4), 1.5 * 4))


@pytest.mark.unit
@pytest.mark.parametrize(
    ("params", "instructions", "demo_sets", "trials"),
    [
        ({}, 3, 6, 10),
        ({"auto": "medium"}, 6, 12, 18),
        ({"auto": "heavy"}, 9, 18, 27),
        ({"num_candidates": 4}, 4, 4, 8),
        ({"num_candidates": 4, "num_trials": 3, "num_instruction_candidates": 2}, 2, 4, 3),
        ({"max_bootstrapped_demos": 0, "max_labeled_demos": 0}, 6, 1, 9),
    ],
)
async def test_presets_set_the_counts_and_explicit_params_override_them(
    params: dict[str, Any], instructions: int, demo_sets: int, trials: int
) -> None:
    outcome = await runner(Fake(), PromptModel(), params).run()
    assert outcome.status == "completed"
    details = outcome.details
    assert details["instruction_candidates"] == {"s": instructions}
    assert details["demo_sets"] == {"s": demo_sets}
    assert details["trials"] == trials


@pytest.mark.unit
async def test_zero_shot_search_still_shows_bootstrapped_demos_to_the_proposer() -> None:
    fake, lm = Fake(), PromptModel()
    params = {"max_bootstrapped_demos": 0, "max_labeled_demos": 0}
    outcome = await runner(fake, lm, params).run()
    assert outcome.details["bootstrapped"] == 3
    assert all("s.demos" not in c[0] for c in fake.val())
    assert "q: train 0" in user_text(lm.proposal_requests()[0])


@pytest.mark.unit
@pytest.mark.parametrize(
    "params",
    [
        {"auto": "huge"},
        {"num_candidates": 0},
        {"num_trials": -1},
        {"minibatch_size": "8"},
        {"minibatch_full_eval_steps": 0},
        {"init_temperature": 3},
        {"tip_seed": "x"},
        {"num_instruction_candidates": True},
        {"teacher": 3},
        {"prompt_model": ""},
        {"paired": "yes"},
    ],
)
async def test_bad_params_fail_the_run_before_any_call(params: dict[str, Any]) -> None:
    fake, lm = Fake(), PromptModel()
    outcome = await runner(fake, lm, params).run()
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error["code"] == StrategyParamsError.code
    assert fake.calls == []  # mipro scores its own baseline, after reading its params
    assert lm.requests == []


@pytest.mark.unit
async def test_the_prompt_model_is_the_programs_model_unless_named() -> None:
    lm = PromptModel()
    await runner(Fake(), lm).run()
    assert lm.requests
    assert {r.model for r in lm.requests} == {"m"}
    lm = PromptModel()
    await runner(Fake(), lm, {"prompt_model": "p"}).run()
    assert {r.model for r in lm.requests} == {"p"}


@pytest.mark.unit
async def test_a_budget_too_small_for_the_teacher_pass_keeps_room_for_a_baseline() -> None:
    # The teacher pass (16 examples) would leave less than the proposals (5 calls) and a
    # baseline on one minibatch (5): it is skipped, and the search runs on 5 examples.
    fake, lm = Fake(), PromptModel()
    outcome = await runner(fake, lm, budget=Budget(max_lm_calls=24)).run()
    assert (outcome.status, outcome.stop_reason) == ("completed", "finished")
    assert outcome.usage.calls <= 24
    assert [c for c in fake.calls if c[1] == "train"] == []
    assert (outcome.details["bootstrapped"], outcome.details["valset_size"]) == (0, 5)
    assert outcome.baseline_score is not None
    assert outcome.best_score is not None
    assert outcome.best_score >= outcome.baseline_score
    # With 6 more calls, the teacher pass fits beside that room.
    fake = Fake()
    outcome = await runner(fake, PromptModel(), budget=Budget(max_lm_calls=30)).run()
    assert outcome.usage.calls <= 30
    assert outcome.details["bootstrapped"] > 0
    # A budget the proposals alone use up ends the run before any score.
    fake = Fake()
    outcome = await runner(fake, PromptModel(), budget=Budget(max_lm_calls=5)).run()
    assert (outcome.status, outcome.stop_reason) == ("budget_exhausted", "max_lm_calls")
    assert (fake.calls, outcome.baseline_score, outcome.best_score) == ([], None, None)


@pytest.mark.unit
async def test_under_a_tight_budget_the_search_runs_on_a_seeded_sample_of_the_valset() -> None:
    unlimited = await runner(Fake(), PromptModel()).run()
    assert unlimited.details["valset_size"] == len(VAL)
    fake, lm, log = Fake(), PromptModel(), InMemoryCallLog()
    budget = Budget(max_lm_calls=unlimited.usage.calls * 2 // 3)
    outcome = await runner(fake, lm, log=log, budget=budget).run()
    assert (outcome.status, outcome.stop_reason) == ("completed", "finished")
    assert outcome.usage.calls <= unlimited.usage.calls * 2 // 3
    size = outcome.details["valset_size"]
    assert 5 <= size < len(VAL)  # not below one minibatch of the plan
    # Every valset call lies in one sample of that size, and the baseline covers it.
    seen = sorted({i for _, _, indices in fake.val() for i in indices})
    assert len(seen) == size
    assert fake.val()[0] == ({}, "val", tuple(seen))
    assert outcome.baseline_score == quality_mean({}, seen)
    # The search the preset plans still runs, on a scaled minibatch, and its leaders'
    # full scores are scores on the sample.
    assert outcome.details["trials"] == unlimited.details["trials"]
    assert 1 <= outcome.details["minibatch_size"] < 5
    assert outcome.details["full_evaluations"] >= 1
    assert outcome.best_overrides
    assert outcome.best_score == quality_mean(outcome.best_overrides, seen)
    assert outcome.best_score > outcome.baseline_score
    # Drawn from the run's seed: the same run narrows alike, and its replay asks nothing.
    again = Fake()
    await runner(again, PromptModel(), budget=budget).run()
    assert again.calls == fake.calls
    replay, replay_lm = Fake(), PromptModel()
    replayed = await runner(replay, replay_lm, log=log, budget=budget).run()
    assert (replay.calls, replay_lm.requests) == ([], [])
    assert (replayed.best_overrides, replayed.best_score) == (
        outcome.best_overrides,
        outcome.best_score,
    )
    # A val_size given is kept: the budget then stops trials instead.
    kept = Fake()
    fixed = await runner(kept, PromptModel(), {"val_size": len(VAL)}, budget=budget).run()
    assert fixed.details["valset_size"] == len(VAL)
    assert fixed.details["stopped_for_budget"] == 1


@pytest.mark.unit
async def test_val_size_caps_the_valset_as_the_presets_do() -> None:
    fake = Fake()
    outcome = await runner(fake, PromptModel(), {"val_size": 8}).run()
    assert outcome.details["valset_size"] == 8
    assert len({i for _, _, indices in fake.val() for i in indices}) == 8


@pytest.mark.unit
async def test_under_a_call_budget_trials_stop_in_time_to_score_the_leader() -> None:
    unlimited = await runner(Fake(), PromptModel()).run()
    spent = unlimited.usage.calls
    fake, lm, log = Fake(), PromptModel(), InMemoryCallLog()
    budget = spent * 2 // 3
    params = {"val_size": len(VAL)}  # the whole valset, whatever the budget
    outcome = await runner(fake, lm, params, log=log, budget=Budget(max_lm_calls=budget)).run()
    assert (outcome.status, outcome.stop_reason) == ("completed", "finished")
    assert outcome.usage.calls <= budget
    assert outcome.details["stopped_for_budget"] == 1
    assert 0 < outcome.details["trials"] < unlimited.details["trials"]
    # The leader of the trials run got its full evaluation: the result is a verified best.
    assert len(fake.full()) >= 2
    assert outcome.best_score == max(quality_mean(o) for o in fake.full())
    assert unlimited.details["stopped_for_budget"] == 0
    # The budget is read where no call is in flight: a replay decides alike, asking nothing.
    replay, replay_lm = Fake(), PromptModel()
    replayed = await runner(
        replay, replay_lm, params, log=log, budget=Budget(max_lm_calls=budget)
    ).run()
    assert (replay.calls, replay_lm.requests) == ([], [])
    assert (replayed.best_overrides, replayed.best_score, replayed.details) == (
        outcome.best_overrides,
        outcome.best_score,
        outcome.details,
    )


@pytest.mark.unit
@pytest.mark.parametrize("seed", range(8))
async def test_a_trial_starts_only_if_its_leaders_full_evaluation_fits_after_it(seed: int) -> None:
    # A trial costs a minibatch (5) and the leader's full evaluation the 15 examples it
    # lacks: with 20 calls left after the baseline one trial runs, with 19 none.
    params = {"race": False, "val_size": len(VAL)}
    before = (await runner(Fake(), PromptModel(), {"num_trials": 0}, seed=seed).run()).usage
    fake = Fake()
    budget = Budget(max_lm_calls=before.calls + 20)
    outcome = await runner(fake, PromptModel(), params, seed=seed, budget=budget).run()
    assert (outcome.status, outcome.stop_reason) == ("completed", "finished")
    assert outcome.details["trials"] >= 1
    assert outcome.details["stopped_for_budget"] == 1
    assert outcome.usage.calls <= before.calls + 20
    # (A suggestion of the baseline is answered from its full score at no cost.)
    tried = [c for c in fake.minibatches() if c[0]]
    assert len(tried) == 1
    assert fake.full() == [{}, tried[0][0]]  # the baseline, then the trial, verified
    assert outcome.best_score == max(quality_mean(o) for o in fake.full())
    short = Fake()
    budget = Budget(max_lm_calls=before.calls + 19)
    kept = await runner(short, PromptModel(), params, seed=seed, budget=budget).run()
    assert (kept.status, kept.details["trials"], len(short.full())) == ("completed", 0, 1)


@pytest.mark.unit
@pytest.mark.parametrize("seed", range(4))
async def test_a_periodic_full_evaluation_waits_while_it_would_crowd_out_the_next_trial(
    seed: int,
) -> None:
    # Trials cost 5, a leader's full evaluation 15, and one is due after every trial. With
    # 30 calls left after the baseline, scoring trial 1's leader at once (25 left) would
    # leave no room for trial 2 and its leader's (20): the search runs its three trials
    # and scores the leader once, at the end.
    params = {"race": False, "val_size": len(VAL), "num_trials": 3}
    params |= {"minibatch_full_eval_steps": 1}
    zero = {**params, "num_trials": 0}
    before = (await runner(Fake(), PromptModel(), zero, seed=seed).run()).usage
    fake = Fake()
    budget = Budget(max_lm_calls=before.calls + 30)
    outcome = await runner(fake, PromptModel(), params, seed=seed, budget=budget).run()
    assert outcome.usage.calls <= before.calls + 30
    assert outcome.details["trials"] == 3
    assert outcome.details["stopped_for_budget"] == 0
    assert len(fake.full()) == 2  # the baseline and the leader at the end


@pytest.mark.unit
async def test_same_seed_same_calls_and_a_recorded_run_replays_without_calls() -> None:
    log, first, first_lm = InMemoryCallLog(), Fake(), PromptModel()
    done = await runner(first, first_lm, log=log).run()
    again, again_lm = Fake(), PromptModel()
    await runner(again, again_lm).run()
    assert again.calls == first.calls
    assert [r.messages for r in again_lm.requests] == [r.messages for r in first_lm.requests]
    other = Fake()
    await runner(other, PromptModel(), seed=4).run()
    assert other.calls != first.calls

    replay, replay_lm = Fake(), PromptModel()
    replayed = await runner(replay, replay_lm, log=log).run()
    assert replay.calls == []
    assert replay_lm.requests == []
    assert (replayed.best_overrides, replayed.best_score, replayed.details) == (
        done.best_overrides,
        done.best_score,
        done.details,
    )


def quality_mean(overrides: Mapping[str, Any], indices: Sequence[int] | None = None) -> float:
    chosen = range(len(VAL)) if indices is None else indices
    return sum(quality(overrides, i) for i in chosen) / len(chosen)


def context(fake: Fake, params: Mapping[str, Any], notes: list[str]) -> StrategyContext:
    """A context outside a runner, to watch the strategy's notes in order."""
    lm = PromptModel()
    counter = iter(range(1_000_000))

    async def evaluate(
        overrides: Mapping[str, Any],
        indices: Sequence[int] | None = None,
        *,
        split: Split = "val",
        want_traces: bool = False,
    ) -> Evaluation:
        size = len(VAL) if split == "val" else len(TRAIN)
        chosen = tuple(range(size)) if indices is None else tuple(indices)
        return await fake(next(counter), overrides, split, chosen, want_traces)

    async def ask(request: LMRequest) -> LMResponse:
        return await lm(next(counter), request)

    return StrategyContext(
        spec_with(),
        TRAIN,
        VAL,
        evaluate,
        ask,
        seed=3,
        params={"minibatch_size": 5, **params},
        on_note=notes.append,
    )


# -- on math_qa with the simulated LM ----------------------------------------------------
async def optimize_math_qa(
    sim_lm: str, example_dir: Path, params: Mapping[str, Any] | None = None
) -> RunOutcome:
    spec = ProgramSpec.load(example_dir / "program.yaml")
    train = load_examples(example_dir / "train.jsonl")[:100]
    dev = load_examples(example_dir / "dev.jsonl")[:60]
    client = LMClient(
        endpoint=Endpoint(api_base=sim_lm, api_key="sk-test"), cache=InMemoryLRUCache()
    )
    outcome = await optimize(
        spec, train, dev, "numeric", runtime=Runtime(client), strategy=mipro, seed=0, params=params
    )
    print(
        f"mipro: baseline {outcome.baseline_score:.3f} -> best {outcome.best_score:.3f} "
        f"with {sorted(outcome.best_overrides or {})}, {outcome.evaluations} evaluations, "
        f"{outcome.lm_calls} LM calls ({outcome.cached_calls} cached), {outcome.details}"
    )
    assert outcome.status == "completed"
    assert client.usage.calls == outcome.lm_calls
    return outcome


@pytest.mark.integration
async def test_mipro_improves_math_qa_over_http(sim_lm: str, example_dir: Path) -> None:
    outcome = await optimize_math_qa(sim_lm, example_dir)
    assert outcome.baseline_score is not None
    assert outcome.best_score is not None
    assert outcome.best_score >= outcome.baseline_score + 0.1
    assert outcome.best_overrides
    assert outcome.details["full_evaluations"] >= 1


@pytest.mark.integration
async def test_mipro_on_math_qa_is_reproducible(sim_lm: str, example_dir: Path) -> None:
    params = {"num_trials": 5, "minibatch_full_eval_steps": 3}
    first = await optimize_math_qa(sim_lm, example_dir, params)
    second = await optimize_math_qa(sim_lm, example_dir, params)
    assert (first.best_overrides, first.best_score) == (second.best_overrides, second.best_score)
    assert first.lm_calls == second.lm_calls


@pytest.mark.unit
async def test_a_leader_races_the_best_full_score_on_half_the_valset() -> None:
    fake, log = Fake(), InMemoryCallLog()
    params = {"num_trials": 12, "minibatch_full_eval_steps": 2}
    outcome = await runner(fake, PromptModel(), params, log=log).run()
    assert outcome.status == "completed"
    half = tuple(range(len(VAL) // 2))
    screened = [c[0] for c in await requested_evaluations(log) if c[2] == half]
    full = fake.full()[1:]  # after the baseline
    details = outcome.details
    assert len(screened) == details["full_evaluations"] + details["full_evaluations_stopped_early"]
    assert details["full_evaluations"] == len(full)
    assert all(f in screened for f in full)  # no full evaluation without its race
    assert outcome.best_score == max(quality_mean(o) for o in [{}, *full])
