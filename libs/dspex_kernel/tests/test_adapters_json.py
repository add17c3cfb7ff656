"""The JSON adapter: its messages, the strict structured-output schema it requests, and
parsing JSON replies that are bare, fenced or wrapped in prose."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest

from dspex_kernel.adapters import JSONAdapter
from dspex_kernel.errors import AdapterParseError
from dspex_kernel.signature import parse_signature

pytestmark = pytest.mark.unit

JSON = JSONAdapter()


class Address(pydantic.BaseModel):
    city: str
    zip_code: str = ""


class Person(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")
    name: str
    age: int = 0
    address: Address | None = None


SIG = parse_signature(
    "question -> answer, n: int, label: Literal['a', 'b'], person: Person, "
    "friends: list[Person], note: Optional[str]",
    types={"Person": Person},
)


def test_messages_ask_for_a_json_object() -> None:
    sig = parse_signature("question -> answer, n: int")
    demos = [{"question": "q1", "answer": "A", "n": 1}]
    system, demo_user, demo_reply, user = (
        m["content"] for m in JSON.format(sig, demos, {"question": "q"})
    )
    assert "Inputs will have the following structure:\n\n[[ ## question ## ]]\n{question}" in system
    assert (
        "Outputs will be a JSON object with the following fields.\n\n{\n"
        '  "answer": "{answer}",\n'
        '  "n": "{n}        # note: the value you produce must be a single int value"\n}'
    ) in system
    assert demo_user == "[[ ## question ## ]]\nq1"
    assert json.loads(demo_reply) == {"answer": "A", "n": 1}
    assert user == (
        "[[ ## question ## ]]\nq\n\nRespond with a JSON object in the following order of "
        "fields: `answer`, then `n` (must be formatted as a valid Python int)."
    )


def test_request_params_hold_a_strict_schema_of_the_outputs() -> None:
    params = JSON.request_params(SIG)
    fmt = params["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "outputs"
    assert fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert list(schema["properties"]) == list(SIG.output_names)
    assert schema["required"] == list(SIG.output_names)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["label"]["enum"] == ["a", "b"]
    assert schema["properties"]["n"]["type"] == "integer"
    for name, definition in schema["$defs"].items():
        # Nested models: every property required, no extras, no defaults (strict mode).
        assert definition["required"] == list(definition["properties"]), name
        assert definition["additionalProperties"] is False, name
        assert all("default" not in p for p in definition["properties"].values()), name
    assert JSON.request_params(SIG)["response_format"] is fmt  # built once


@pytest.mark.parametrize(
    "outputs", ["counts: dict[str, int]", "anything: Any", "items: list", "a, raw: dict"]
)
def test_open_ended_outputs_fall_back_to_json_mode(outputs: str) -> None:
    sig = parse_signature(f"q -> {outputs}")
    assert JSON.request_params(sig) == {"response_format": {"type": "json_object"}}


def test_field_names_that_clash_with_pydantic_still_get_a_schema() -> None:
    sig = parse_signature("q -> json: int, schema, model_config")
    schema = JSON.request_params(sig)["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["json", "schema", "model_config"]


GOOD: dict[str, Any] = {
    "answer": "Paris",
    "n": 3,
    "label": "a",
    "person": {"name": "Ada", "age": 36, "address": {"city": "London", "zip_code": ""}},
    "friends": [],
    "note": None,
}


def test_reply_round_trip() -> None:
    assert JSON.parse(SIG, JSON.format_reply(SIG, GOOD)) == GOOD


@pytest.mark.parametrize(
    "wrap",
    [
        "{}",
        "```json\n{}\n```",
        "```\n{}\n```",
        "Here is the answer:\n{}\nHope this helps {{not json}}.",
        "Preamble with a stray { brace.\n{}",
    ],
)
def test_the_object_is_found_however_it_is_wrapped(wrap: str) -> None:
    completion = wrap.replace("{}", json.dumps(GOOD), 1) if wrap != "{}" else json.dumps(GOOD)
    assert JSON.parse(SIG, completion) == GOOD


def test_values_are_coerced_and_extra_keys_dropped() -> None:
    sig = parse_signature("q -> n: int, ok: bool, tags: list[str], note: Optional[str]")
    completion = '{"n": "4", "ok": "True", "tags": "[\\"x\\"]", "junk": {"}": 1}}'
    assert JSON.parse(sig, completion) == {"n": 4, "ok": True, "tags": ["x"], "note": None}


def test_python_literal_dicts_are_accepted() -> None:
    sig = parse_signature("q -> answer, n: int")
    assert JSON.parse(sig, "{'answer': 'it\\'s', 'n': 2,}") == {"answer": "it's", "n": 2}


def test_strings_with_braces_do_not_confuse_the_search() -> None:
    sig = parse_signature("q -> answer")
    completion = 'Result: {"answer": "use } and { freely"} -- end'
    assert JSON.parse(sig, completion) == {"answer": "use } and { freely"}


def test_extra_model_fields_survive_as_json() -> None:
    sig = parse_signature("q -> person: Person", types={"Person": Person})
    parsed = JSON.parse(sig, '{"person": {"name": "Bo", "mood": "fine"}}')
    assert parsed == {"person": {"name": "Bo", "age": 0, "address": None, "mood": "fine"}}


def _error(sig: Any, completion: str) -> AdapterParseError:
    with pytest.raises(AdapterParseError) as info:
        JSON.parse(sig, completion)
    assert info.value.code == "unparseable_reply"
    assert info.value.adapter == "json"
    assert info.value.completion == completion
    return info.value


def test_missing_key_is_an_error_naming_it() -> None:
    err = _error(SIG, json.dumps({k: v for k, v in GOOD.items() if k != "n"}))
    assert "lacks the output field(s) n " in err.message
    assert "keys found: answer, label, person, friends, note" in err.message


def test_wrong_type_is_an_error() -> None:
    err = _error(SIG, json.dumps({**GOOD, "n": "many"}))
    assert "output field 'n': 'many' is not a valid int" in err.message
    err = _error(SIG, json.dumps({**GOOD, "person": {"age": 3}}))
    assert "output field 'person'" in err.message


@pytest.mark.parametrize("completion", ["", "no json here", '["a", "list"]', "{broken: json"])
def test_replies_without_an_object_are_errors(completion: str) -> None:
    err = _error(SIG, completion)
    assert "holds no JSON object" in err.message
