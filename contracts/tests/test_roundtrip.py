"""Every event survives JSON and back unchanged, matches its committed JSON Schema, and
every documented field example is itself valid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from pydantic import BaseModel, TypeAdapter

from dspex_contracts import (
    EVENTS,
    CandidateProposed,
    CandidateScored,
    Envelope,
    RunCompleted,
    event_for_subject,
)

CONTRACTS = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.unit


def test_there_is_an_example_of_every_event(events: list[Envelope[Any]]) -> None:
    assert {type(e) for e in events} == set(EVENTS)


def test_json_round_trip_is_lossless(events: list[Envelope[Any]]) -> None:
    for event in events:
        model = event_for_subject(event.SUBJECT)
        again = model.model_validate_json(event.model_dump_json())
        assert again == event
        assert again.model_dump_json() == event.model_dump_json()


def test_python_round_trip_through_plain_json_types(events: list[Envelope[Any]]) -> None:
    for event in events:
        data = json.loads(event.model_dump_json())
        assert type(event).model_validate(data) == event


def test_events_match_their_committed_schema(events: list[Envelope[Any]]) -> None:
    for event in events:
        schema = json.loads((CONTRACTS / "schemas" / f"{event.SUBJECT}.json").read_text())
        jsonschema.Draft202012Validator(schema).validate(json.loads(event.model_dump_json()))


def test_the_committed_schema_rejects_what_the_model_rejects(
    events: list[Envelope[Any]],
) -> None:
    event = events[0]
    schema = json.loads((CONTRACTS / "schemas" / f"{event.SUBJECT}.json").read_text())
    data = json.loads(event.model_dump_json())
    data["payload"]["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError, match="surprise"):
        jsonschema.Draft202012Validator(schema).validate(data)


def test_run_events_correlate_by_run_and_derive_replay_safe_ids(
    events: list[Envelope[Any]],
) -> None:
    by_type = {type(e): e for e in events}
    proposed, scored = by_type[CandidateProposed], by_type[CandidateScored]
    assert proposed.id == proposed.payload.call_id == "run-42:3"
    assert scored.id == "run-42:3:scored"
    assert scored.causation_id == proposed.id
    assert proposed.correlation_id == scored.correlation_id == "run-42"
    assert by_type[RunCompleted].id == "run-42:completed"


def _models() -> set[type[BaseModel]]:
    """Every model reachable from an event: envelopes, payloads, shared parts."""
    seen: set[type[BaseModel]] = set()
    todo: list[Any] = list(EVENTS)
    while todo:
        item = todo.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            if item in seen:
                continue
            seen.add(item)
            todo += [f.annotation for f in item.model_fields.values()]
        todo += list(getattr(item, "__args__", ()))
    return seen


def test_every_field_is_described_and_its_examples_are_valid() -> None:
    checked = 0
    for model in _models():
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            annotated: Any = Annotated[field.annotation, field]
            adapter: TypeAdapter[Any] = TypeAdapter(annotated)
            for example in field.examples or ():
                adapter.validate_python(example)
                checked += 1
    assert checked > 50
