"""Bad input is refused with a readable reason: unknown fields, wrong types, wrong type
name or version, missing fields, oversized values, and the cross-field rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from dspex_contracts import (
    EVENTS,
    CandidateProposed,
    DatasetRef,
    Envelope,
    ExecuteRequested,
    LMSettings,
    OptimizeRequested,
    RunCompleted,
    call_id_for,
    dataset_id,
)

pytestmark = pytest.mark.unit


def _raw(events: list[Envelope[Any]], kind: type[Envelope[Any]]) -> dict[str, Any]:
    event = next(e for e in events if type(e) is kind)
    data: dict[str, Any] = json.loads(event.model_dump_json())
    return data


def _refused(kind: type[Envelope[Any]], data: dict[str, Any], *needles: str) -> str:
    with pytest.raises(ValidationError) as caught:
        kind.model_validate_json(json.dumps(data))
    text = str(caught.value)
    for needle in needles:
        assert needle in text, text
    return text


def test_unknown_fields_are_refused_at_every_level(events: list[Envelope[Any]]) -> None:
    for kind in EVENTS:
        data = _raw(events, kind)
        data["surprise"] = 1
        _refused(kind, data, "surprise", "Extra inputs are not permitted")
        data = _raw(events, kind)
        data["payload"]["surprise"] = 1
        _refused(kind, data, "payload.surprise", "Extra inputs are not permitted")
    data = _raw(events, OptimizeRequested)
    data["payload"]["budget"]["max_tokens"] = 5
    _refused(OptimizeRequested, data, "payload.budget.max_tokens")


def test_endpoints_and_keys_never_travel_in_events(events: list[Envelope[Any]]) -> None:
    for field in ("api_base", "api_key"):
        data = _raw(events, OptimizeRequested)
        data["payload"]["lm"][field] = "secret"
        _refused(OptimizeRequested, data, f"payload.lm.{field}", "Extra inputs")
        with pytest.raises(ValidationError):
            LMSettings.model_validate({"model": "openai/x", field: "secret"})


def test_wrong_types_are_refused(events: list[Envelope[Any]]) -> None:
    data = _raw(events, ExecuteRequested)
    data["payload"]["inputs"] = "question?"
    _refused(ExecuteRequested, data, "payload.inputs", "Input should be an object")
    data = _raw(events, OptimizeRequested)
    data["payload"]["seed"] = "seven"
    _refused(OptimizeRequested, data, "payload.seed", "valid integer")
    data = _raw(events, CandidateProposed)
    data["payload"]["example_indices"] = [0, "one"]
    _refused(CandidateProposed, data, "payload.example_indices.1")
    data = _raw(events, RunCompleted)
    data["payload"]["status"] = "sleeping"
    _refused(RunCompleted, data, "payload.status", "'completed'")


def test_wrong_type_name_or_version_is_refused_by_name(events: list[Envelope[Any]]) -> None:
    for kind in EVENTS:
        data = _raw(events, kind)
        data["type"] = "SomethingElse"
        _refused(kind, data, f"type must be {kind.TYPE!r}", "'SomethingElse'")
        for version in (2, 0, "1", None):
            data = _raw(events, kind)
            data["version"] = version
            _refused(kind, data, "is not served on this subject", "serves version 1")


def test_missing_fields_are_named(events: list[Envelope[Any]]) -> None:
    data = _raw(events, ExecuteRequested)
    del data["payload"]["inputs"]
    _refused(ExecuteRequested, data, "payload.inputs", "Field required")
    data = _raw(events, OptimizeRequested)
    del data["payload"]["metric"], data["payload"]["run_id"]
    _refused(OptimizeRequested, data, "payload.metric", "payload.run_id", "Field required")
    data = _raw(events, RunCompleted)
    del data["payload"]
    _refused(RunCompleted, data, "payload", "Field required")


def test_oversized_values_are_refused(events: list[Envelope[Any]]) -> None:
    data = _raw(events, ExecuteRequested)
    data["id"] = "x" * 201
    _refused(ExecuteRequested, data, "id", "at most 200 characters")
    data = _raw(events, RunCompleted)
    data["payload"]["error"] = {"code": "e", "message": "m" * 4001}
    _refused(RunCompleted, data, "payload.error.message", "at most 4000 characters")
    data = _raw(events, OptimizeRequested)
    data["payload"]["trainset"] = {"examples": [{"q": i} for i in range(10_001)]}
    _refused(OptimizeRequested, data, "payload.trainset.examples", "at most 10000 items")
    data = _raw(events, CandidateProposed)
    data["payload"]["assignment"] = {f"v{i}": i for i in range(1001)}
    _refused(CandidateProposed, data, "payload.assignment", "at most 1000 items")


def test_metrics_are_names_never_import_paths(events: list[Envelope[Any]]) -> None:
    for metric in ("my_pkg.metrics:score", "os:system", "a/b"):
        data = _raw(events, OptimizeRequested)
        data["payload"]["metric"] = metric
        _refused(OptimizeRequested, data, "payload.metric", "looks like an import path")


def test_a_dataset_is_registered_or_inline_never_both_or_neither() -> None:
    examples = [{"q": "a"}]
    assert DatasetRef(examples=examples).size == 1
    assert DatasetRef(id=dataset_id(examples), count=9).size == 9
    for bad in ({}, {"id": dataset_id(examples), "examples": examples}):
        with pytest.raises(ValidationError, match="exactly one of 'id'"):
            DatasetRef.model_validate(bad)
    with pytest.raises(ValidationError, match="count 2 does not match 1 examples"):
        DatasetRef(examples=examples, count=2)
    with pytest.raises(ValidationError, match="id"):
        DatasetRef(id="not-a-hash")


def test_dataset_ids_are_content_hashes() -> None:
    a = dataset_id([{"q": "a", "answer": 1}])
    assert a == dataset_id([{"answer": 1, "q": "a"}])  # key order does not matter
    assert a != dataset_id([{"q": "b", "answer": 1}])
    DatasetRef(id=a)


def test_example_indices_must_fall_inside_the_dataset(events: list[Envelope[Any]]) -> None:
    data = _raw(events, CandidateProposed)
    data["payload"]["example_indices"] = [0, 5]
    _refused(CandidateProposed, data, "below the dataset's 5 examples")
    data["payload"]["example_indices"] = [-1]
    _refused(CandidateProposed, data, "greater than or equal to 0")


def test_a_proposal_id_is_its_call_id(events: list[Envelope[Any]]) -> None:
    data = _raw(events, CandidateProposed)
    data["id"] = "random-id"
    _refused(CandidateProposed, data, "must equal payload.call_id")
    with pytest.raises(ValueError, match="start at 0"):
        call_id_for("run-1", -1)


def test_a_completed_run_has_a_terminal_status(events: list[Envelope[Any]]) -> None:
    for status in ("queued", "running", "paused"):
        data = _raw(events, RunCompleted)
        data["payload"]["status"] = status
        _refused(RunCompleted, data, "status must be one of", repr(status))


def test_run_ids_are_safe_subject_tokens(events: list[Envelope[Any]]) -> None:
    for run_id in ("a.b", "a b", "*", ">", "", "-lead"):
        data = _raw(events, OptimizeRequested)
        data["payload"]["run_id"] = run_id
        _refused(OptimizeRequested, data, "payload.run_id")


def test_budgets_are_positive_and_finite(events: list[Envelope[Any]]) -> None:
    data = _raw(events, OptimizeRequested)
    data["payload"]["budget"]["max_cost_usd"] = 0
    _refused(OptimizeRequested, data, "payload.budget.max_cost_usd", "greater than 0")
    data = _raw(events, OptimizeRequested)
    data["payload"]["budget"]["max_wall_s"] = float("inf")  # not JSON: Python input
    with pytest.raises(ValidationError, match=r"max_wall_s\n.*finite number"):
        OptimizeRequested.model_validate(data)
