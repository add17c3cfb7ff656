"""The v1 schemas only grow: the comparator catches each kind of break and accepts
additive changes, and the current models do not break any committed schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from dspex_contracts import EVENTS, breaking_changes

pytestmark = pytest.mark.unit

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"

BASE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "payload"],
    "properties": {
        "id": {"type": "string", "maxLength": 200},
        "kind": {"const": "Thing", "type": "string"},
        "payload": {"$ref": "#/$defs/Payload"},
    },
    "$defs": {
        "Payload": {
            "type": "object",
            "required": ["count"],
            "properties": {
                "count": {"type": "integer"},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
                "status": {"$ref": "#/$defs/Status"},
                "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
                "inner": {"anyOf": [{"$ref": "#/$defs/Item"}, {"type": "null"}]},
            },
        },
        "Item": {"type": "object", "properties": {"score": {"type": "number"}}},
        "Status": {"type": "string", "enum": ["running", "done"]},
    },
}


def changed(edit: Any) -> list[str]:
    new = copy.deepcopy(BASE)
    edit(new)
    return breaking_changes(BASE, new)


def test_identical_schemas_are_compatible() -> None:
    assert breaking_changes(BASE, copy.deepcopy(BASE)) == []


def test_a_removed_property_breaks_at_any_depth() -> None:
    assert changed(lambda s: s["properties"].pop("id")) == ["$.id: property removed"]
    assert changed(lambda s: s["$defs"]["Payload"]["properties"].pop("note")) == [
        "$.payload.note: property removed"
    ]
    assert changed(lambda s: s["$defs"]["Item"]["properties"].pop("score")) == [
        "$.payload.items[].score: property removed",
        "$.payload.inner.score: property removed",
    ]


def test_a_retyped_property_breaks() -> None:
    def retype(s: dict[str, Any]) -> None:
        s["$defs"]["Payload"]["properties"]["count"] = {"type": "string"}

    assert changed(retype) == ["$.payload.count: type changed from ['integer'] to ['string']"]

    def not_nullable(s: dict[str, Any]) -> None:
        s["$defs"]["Payload"]["properties"]["note"] = {"type": "string"}

    assert changed(not_nullable) == [
        "$.payload.note: type changed from ['null', 'string'] to ['string']"
    ]

    def to_number(s: dict[str, Any]) -> None:
        s["$defs"]["Item"]["properties"]["score"] = {"type": "integer"}

    assert len(changed(to_number)) == 2

    def object_to_list(s: dict[str, Any]) -> None:
        s["properties"]["payload"] = {"type": "array", "items": {}}

    assert changed(object_to_list) == ["$.payload: type changed from ['object'] to ['array']"]


def test_a_changed_constant_or_a_removed_enum_value_breaks() -> None:
    assert changed(lambda s: s["properties"]["kind"].update(const="Other")) == [
        "$.kind: values removed: 'Thing'"
    ]
    assert changed(lambda s: s["$defs"]["Status"].update(enum=["running"])) == [
        "$.payload.status: values removed: 'done'"
    ]

    def restrict(s: dict[str, Any]) -> None:
        s["properties"]["id"]["enum"] = ["a", "b"]

    assert changed(restrict) == ["$.id: now restricted to fixed values"]


def test_a_new_required_property_breaks() -> None:
    def add_required(s: dict[str, Any]) -> None:
        s["$defs"]["Payload"]["properties"]["extra"] = {"type": "string"}
        s["$defs"]["Payload"]["required"].append("extra")

    assert changed(add_required) == ["$.payload.extra: new required property"]

    def require_existing(s: dict[str, Any]) -> None:
        s["$defs"]["Payload"]["required"].append("note")

    assert changed(require_existing) == ["$.payload.note: new required property"]


def test_additive_changes_are_compatible() -> None:
    def additive(s: dict[str, Any]) -> None:
        s["$defs"]["Payload"]["properties"]["extra"] = {"type": "string", "default": ""}
        s["$defs"]["Item"]["properties"]["latency"] = {"type": "number"}
        s["$defs"]["Status"]["enum"].append("paused")
        s["$defs"]["Payload"]["required"].remove("count")
        s["properties"]["id"]["maxLength"] = 400
        s["properties"]["id"]["description"] = "now documented"

    assert changed(additive) == []


def test_moving_a_definition_behind_another_ref_is_not_a_change() -> None:
    def inline(s: dict[str, Any]) -> None:
        s["properties"]["payload"] = copy.deepcopy(s["$defs"]["Payload"])

    assert changed(inline) == []


class _V1(BaseModel):
    name: str
    version: int | None = None
    tags: list[str] = Field(default_factory=list)
    mode: Literal["a", "b"] = "a"


def test_it_reads_real_pydantic_schemas() -> None:
    class Additive(BaseModel):
        name: str
        version: int | None = None
        tags: list[str] = Field(default_factory=list)
        mode: Literal["a", "b", "c"] = "a"
        note: str | None = None

    class Retyped(BaseModel):
        name: str
        version: str | None = None
        tags: list[int] = Field(default_factory=list)
        mode: Literal["a"] = "a"
        owner: str

    old = _V1.model_json_schema()
    assert breaking_changes(old, Additive.model_json_schema()) == []
    assert breaking_changes(old, Retyped.model_json_schema()) == [
        "$.version: type changed from ['integer', 'null'] to ['null', 'string']",
        "$.tags[]: type changed from ['string'] to ['integer']",
        "$.mode: values removed: 'b'",
        "$.owner: new required property",
    ]


def test_no_event_breaks_its_committed_v1_schema() -> None:
    current = {event.SUBJECT: event for event in EVENTS}
    committed = sorted(SCHEMAS.glob("*.v1.json"))
    assert len(committed) == len(EVENTS)
    for path in committed:
        subject = path.name.removesuffix(".json")
        assert subject in current, f"{subject}: a published v1 event was removed"
        old = json.loads(path.read_text(encoding="utf-8"))
        assert breaking_changes(old, current[subject].model_json_schema()) == [], subject
