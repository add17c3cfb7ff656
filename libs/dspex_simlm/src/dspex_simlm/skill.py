"""The documented skill model: the probability that a prompt gets the right answer, the stable
hash draw that decides it, and deterministic plausible wrong answers."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .config import MODEL_SKILL

DIFFICULTY_WEIGHT = 0.30
REASONING_BONUS = 0.15
CORRECT_DEMO_BONUS = 0.06
CORRECT_DEMO_CAP = 4
WRONG_DEMO_PENALTY = 0.10
HINT_BONUS = 0.05
HINT_CAP = 3
HOT_TEMPERATURE_PENALTY = 0.10
P_MIN, P_MAX = 0.02, 0.98
REASONING_MARKERS = ("reasoning", "rationale", "thought")
# Request fields that vary the draw when temperature > 0 (sampling is "on").
VARIATION_KEYS = ("seed", "rollout_id", "user", "n")


@dataclass(frozen=True, slots=True)
class SkillFactors:
    """What the model sees that matters for one answer."""

    model: str
    difficulty: float = 0.0
    reasoning_first: bool = False
    correct_demos: int = 0
    wrong_demos: int = 0
    hints_matched: int = 0
    temperature: float = 0.0


def correct_probability(f: SkillFactors) -> float:
    """p(correct), exactly as documented in the package README."""
    p = MODEL_SKILL[f.model] - DIFFICULTY_WEIGHT * f.difficulty
    if f.reasoning_first:
        p += REASONING_BONUS
    p += CORRECT_DEMO_BONUS * min(f.correct_demos, CORRECT_DEMO_CAP)
    p -= WRONG_DEMO_PENALTY * f.wrong_demos
    p += HINT_BONUS * min(f.hints_matched, HINT_CAP)
    p -= HOT_TEMPERATURE_PENALTY * max(0.0, f.temperature - 1.0)
    return min(P_MAX, max(P_MIN, p))


def is_reasoning_field(name: str) -> bool:
    lowered = name.lower()
    return any(marker in lowered for marker in REASONING_MARKERS)


def count_hints(instructions: str, hints: Sequence[str]) -> int:
    """Distinct hint phrases present in the instructions (case and spacing ignored)."""
    text = " ".join(instructions.split()).casefold()
    phrases = {" ".join(h.split()).casefold() for h in hints}
    return sum(1 for phrase in phrases if phrase and phrase in text)


def normalized_messages(messages: Sequence[Mapping[str, str]]) -> list[list[str]]:
    return [[m["role"], " ".join(m["content"].split())] for m in messages]


def sampling_key(
    model: str,
    messages: Sequence[Mapping[str, str]],
    temperature: float,
    request: Mapping[str, Any],
    choice: int = 0,
) -> str:
    """The hash input of a draw: greedy decoding (temperature 0) ignores everything else."""
    parts: list[Any] = [model, normalized_messages(messages)]
    if temperature > 0:
        extras = {k: request[k] for k in VARIATION_KEYS if k in request}
        parts += [temperature, extras, choice]
    return json.dumps(parts, sort_keys=True, default=str)


def stable_unit(key: str, *salt: str) -> float:
    """A uniform number in [0, 1) that depends only on its arguments (sha256)."""
    digest = hashlib.sha256("\x1f".join((key, *salt)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def stable_int(key: str, low: int, high: int, *salt: str) -> int:
    """A uniform integer in [low, high] derived from :func:`stable_unit`."""
    return low + min(high - low, int(stable_unit(key, *salt) * (high - low + 1)))


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().replace(",", ""))
        except ValueError:
            return None
    return None


def wrong_answer(correct: Any, key: str, alternatives: Sequence[Any] = ()) -> Any:
    """A deterministic, plausible, different answer: a nearby number, another known answer,
    the negation of a bool, or a garbled string."""
    if isinstance(correct, bool):
        return not correct
    number = _as_number(correct)
    if number is not None:
        span = max(3, math.ceil(abs(number) * 0.1))
        offset = stable_int(key, 1, span, "offset") * (-1 if stable_unit(key, "sign") < 0.5 else 1)
        if number + offset < 0 <= number:  # keep counts non-negative when the truth is
            offset = -offset
        if isinstance(correct, float) and not number.is_integer():
            return round(number + offset, 2)
        return int(number) + offset if not isinstance(correct, str) else str(int(number) + offset)
    others = [
        a for a in dict.fromkeys(map(str, alternatives)) if answers_equal(a, correct) is False
    ]
    if others:
        return others[stable_int(key, 0, len(others) - 1, "alternative")]
    words = str(correct).split()
    if len(words) > 1:
        return " ".join(reversed(words))
    return str(correct)[::-1] + "?" if str(correct) else "unknown"


def answers_equal(given: Any, expected: Any) -> bool | None:
    """Numbers compare by value, text by normalised form; ``None`` when ``given`` holds no
    answer at all (empty, a "not supplied" placeholder, or non-numeric for a number)."""
    text = given if isinstance(given, str) else json.dumps(given)
    cleaned = " ".join(text.split()).casefold().rstrip(".")
    if not cleaned or cleaned.startswith("not supplied"):
        return None
    expected_number = _as_number(expected)
    if expected_number is not None and not isinstance(expected, str):
        given_number = _as_number(given)
        return None if given_number is None else math.isclose(given_number, expected_number)
    expected_text = expected if isinstance(expected, str) else json.dumps(expected)
    return cleaned == " ".join(expected_text.split()).casefold().rstrip(".")
