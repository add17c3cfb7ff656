"""The skill model as plain functions: each factor moves p(correct) the documented way, and
the draws are stable."""

from __future__ import annotations

import pytest

from dspex_simlm.skill import (
    SkillFactors,
    answers_equal,
    correct_probability,
    count_hints,
    sampling_key,
    stable_unit,
    wrong_answer,
)

pytestmark = pytest.mark.unit

BASE = SkillFactors(model="sim-base", difficulty=0.5)
MESSAGES = [{"role": "user", "content": "What is 2 + 2?"}]


def p(**changes: object) -> float:
    fields = {
        "model": BASE.model,
        "difficulty": BASE.difficulty,
        "reasoning_first": BASE.reasoning_first,
        "correct_demos": BASE.correct_demos,
        "wrong_demos": BASE.wrong_demos,
        "hints_matched": BASE.hints_matched,
        "temperature": BASE.temperature,
    }
    fields.update(changes)
    return correct_probability(SkillFactors(**fields))  # type: ignore[arg-type]


def test_base_probability_follows_the_formula() -> None:
    assert p() == pytest.approx(0.55 - 0.3 * 0.5)
    assert p(model="sim-small") < p() < p(model="sim-large")
    assert p(difficulty=1.0) < p(difficulty=0.0)


def test_reasoning_first_adds() -> None:
    assert p(reasoning_first=True) == pytest.approx(p() + 0.15)


def test_correct_demos_add_up_to_a_cap() -> None:
    assert p(correct_demos=3) == pytest.approx(p() + 0.18)
    assert p(correct_demos=4) == pytest.approx(p(correct_demos=9))


def test_wrong_demos_subtract() -> None:
    assert p(wrong_demos=2) == pytest.approx(p() - 0.2)
    assert p(correct_demos=2, wrong_demos=1) == pytest.approx(p() + 0.12 - 0.1)


def test_hints_add_up_to_a_cap() -> None:
    assert p(hints_matched=2) == pytest.approx(p() + 0.1)
    assert p(hints_matched=3) == pytest.approx(p(hints_matched=5))


def test_only_hot_temperatures_cost() -> None:
    assert p(temperature=0.9) == pytest.approx(p())
    assert p(temperature=1.5) == pytest.approx(p() - 0.05)


def test_probability_is_clamped() -> None:
    assert p(model="sim-large", difficulty=0, reasoning_first=True, correct_demos=4) == 0.98
    assert p(model="sim-small", difficulty=1, wrong_demos=5) == 0.02


def test_greedy_decoding_ignores_rollout_and_seed() -> None:
    keys = {sampling_key("sim-base", MESSAGES, 0.0, {"rollout_id": r, "seed": r}) for r in range(5)}
    assert len(keys) == 1
    assert sampling_key("sim-base", MESSAGES, 0.0, {}) != sampling_key(
        "sim-large", MESSAGES, 0.0, {}
    )


def test_sampling_varies_with_rollout_seed_and_temperature() -> None:
    keys = {sampling_key("sim-base", MESSAGES, 0.7, {"rollout_id": r}) for r in range(5)}
    keys |= {sampling_key("sim-base", MESSAGES, 0.7, {"seed": 1})}
    keys |= {sampling_key("sim-base", MESSAGES, 0.8, {"rollout_id": 0})}
    assert len(keys) == 7
    draws = [stable_unit(k) for k in keys]
    assert all(0.0 <= d < 1.0 for d in draws)
    assert len(set(draws)) == 7


def test_whitespace_does_not_change_the_draw() -> None:
    spaced = [{"role": "user", "content": "  What is  2 + 2?\n"}]
    assert sampling_key("sim-base", spaced, 0.0, {}) == sampling_key("sim-base", MESSAGES, 0.0, {})


@pytest.mark.parametrize("truth", [0, 1, 7, 250])
def test_wrong_numbers_are_near_different_and_stable(truth: int) -> None:
    wrong = [wrong_answer(truth, f"k{i}") for i in range(30)]
    assert all(isinstance(w, int) and w != truth and w >= 0 for w in wrong)
    assert all(abs(w - truth) <= max(3, truth // 10 + 1) for w in wrong)
    assert wrong == [wrong_answer(truth, f"k{i}") for i in range(30)]


def test_wrong_text_uses_other_answers_or_garbles() -> None:
    assert wrong_answer("Paris", "k", ["Paris", "Rome", "Oslo"]) in {"Rome", "Oslo"}
    assert wrong_answer("blue sky", "k") == "sky blue"
    assert wrong_answer(True, "k") is False
    assert wrong_answer("12", "k") != "12"
    assert wrong_answer("12", "k").isdigit()


def test_answers_compare_by_value_and_spot_missing_ones() -> None:
    assert answers_equal("42", 42) is True
    assert answers_equal(" 42.0 ", 42) is True
    assert answers_equal("41", 42) is False
    assert answers_equal("Not supplied for this particular example. ", 42) is None
    assert answers_equal("forty-two", 42) is None
    assert answers_equal("  the  Answer. ", "The answer") is True
    assert answers_equal("other", "The answer") is False


def test_hints_are_found_in_instructions_once_each() -> None:
    hints = ["step by step", "double-check"]
    assert count_hints("Think STEP  by step, then step by step again.", hints) == 1
    assert count_hints("Double-check; go step by step.", hints) == 2
    assert count_hints("Answer the question.", hints) == 0
