"""The variable space: validation messages, conditions, seeded sampling, Optuna mapping."""

from __future__ import annotations

import random

import optuna
import pytest

from dspex_kernel.errors import ConfigurationError
from dspex_kernel.variables import VariableSpace

pytestmark = pytest.mark.unit


def space() -> VariableSpace:
    return VariableSpace.model_validate(
        {
            "variables": [
                {
                    "name": "module",
                    "kind": "choice",
                    "choices": ["predict", "chain_of_thought"],
                    "path": "s.module",
                },
                {
                    "name": "temperature",
                    "kind": "float",
                    "low": 0.0,
                    "high": 1.5,
                    "path": "*.temperature",
                },
                {
                    "name": "k",
                    "kind": "int",
                    "low": 0,
                    "high": 8,
                    "step": 2,
                    "path": "s.max_tokens",
                    "condition": {"variable": "module", "in": ["chain_of_thought"]},
                },
                {
                    "name": "instructions",
                    "kind": "text",
                    "candidates": ["A", "B", "C"],
                    "max_length": 50,
                    "path": "s.instructions",
                },
                {
                    "name": "demos",
                    "kind": "demos",
                    "max_demos": 2,
                    "candidates": [[], [{"q": "1", "a": "2"}]],
                    "path": "s.demos",
                },
            ]
        }
    )


def test_valid_assignment_passes() -> None:
    space().validate_assignment(
        {"module": "chain_of_thought", "temperature": 0.3, "k": 4, "instructions": "B"}
    )


def test_every_problem_is_named() -> None:
    with pytest.raises(ConfigurationError) as info:
        space().validate_assignment(
            {
                "module": "nope",
                "temperature": 3.0,
                "k": 3,
                "instructions": "x" * 51,
                "demos": [{}, {}, {}],
                "colour": "red",
            }
        )
    message = info.value.message
    for fragment in [
        "'colour' is not a variable",
        "'nope' is not one of",
        "outside [0.0, 1.5]",
        "'k' only exists when 'module'",
        "limit is 50",
        "limit is 2",
    ]:
        assert fragment in message


def test_int_grid_and_types() -> None:
    s = space()
    with pytest.raises(ConfigurationError, match="grid"):
        s.validate_assignment({"module": "chain_of_thought", "k": 3})
    with pytest.raises(ConfigurationError, match="must be a number"):
        s.validate_assignment({"temperature": "hot"})
    with pytest.raises(ConfigurationError, match="must be a number"):
        s.validate_assignment({"temperature": True})


def test_sampling_is_seeded_and_respects_conditions() -> None:
    s = space()
    a = [s.sample(random.Random(7)) for _ in range(3)]
    b = [s.sample(random.Random(7)) for _ in range(3)]
    assert a == b
    draws = [s.sample(random.Random(i)) for i in range(200)]
    for d in draws:
        s.validate_assignment(d)
        assert ("k" in d) == (d["module"] == "chain_of_thought")
    assert {d["module"] for d in draws} == {"predict", "chain_of_thought"}


def test_declaration_errors() -> None:
    with pytest.raises(ValueError, match="declared before"):
        VariableSpace.model_validate(
            {
                "variables": [
                    {
                        "name": "x",
                        "kind": "int",
                        "low": 0,
                        "high": 1,
                        "condition": {"variable": "y", "in": [1]},
                    },
                    {"name": "y", "kind": "int", "low": 0, "high": 1},
                ]
            }
        )
    with pytest.raises(ValueError, match="low must be <= high"):
        VariableSpace.model_validate(
            {"variables": [{"name": "x", "kind": "float", "low": 2, "high": 1}]}
        )
    with pytest.raises(ValueError, match="twice"):
        VariableSpace.model_validate(
            {"variables": [{"name": "x", "kind": "choice", "choices": [1]}] * 2}
        )


def test_optuna_ask_and_tell_with_conditions() -> None:
    s = space()
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1), direction="maximize")
    seen = []
    for _ in range(12):
        trial = study.ask()
        assignment = s.suggest(trial)
        s.validate_assignment(assignment)
        seen.append(assignment)
        study.tell(trial, float(assignment["temperature"]))
    assert all(("k" in a) == (a["module"] == "chain_of_thought") for a in seen)
    assert all(a["instructions"] in ("A", "B", "C") for a in seen)
    dists = s.optuna_distributions()
    assert set(dists) == {"module", "temperature", "k", "instructions", "demos"}


def test_defaults() -> None:
    assert space().defaults() == {
        "module": "predict",
        "temperature": 0.0,
        "instructions": "A",
        "demos": [],
    }
