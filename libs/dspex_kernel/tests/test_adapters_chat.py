"""The chat adapter on its own: message layout, value rendering, reply parsing with type
coercion, clear parse errors, and the adapter registry."""

from __future__ import annotations

import json
from typing import Any, Literal

import pydantic
import pytest

from dspex_kernel.adapters import Adapter, ChatAdapter, JSONAdapter, get_adapter
from dspex_kernel.errors import AdapterParseError, ProgramError
from dspex_kernel.signature import FieldSpec, parse_signature

pytestmark = pytest.mark.unit

CHAT = ChatAdapter()


class City(pydantic.BaseModel):
    name: str
    population: int = 0


QA = parse_signature("question -> answer")
TYPED = parse_signature(
    "question, context: list[str] -> answer: int, sure: bool, score: float, tags: list[str], "
    "label: Literal['yes', 'no'], city: City, extra: Optional[int]",
    types={"City": City},
)


def test_registry_returns_shared_adapters_and_names_known_ones() -> None:
    chat: Adapter = get_adapter("chat")
    json_adapter: Adapter = get_adapter("json")
    assert isinstance(chat, ChatAdapter)
    assert isinstance(json_adapter, JSONAdapter)
    assert (chat.name, json_adapter.name) == ("chat", "json")
    assert get_adapter("chat") is chat
    with pytest.raises(ProgramError, match=r"unknown adapter 'xml'; known adapters: chat, json"):
        get_adapter("xml")


def test_messages_are_system_then_user_with_the_format_reminder() -> None:
    messages = CHAT.format(QA, [], {"question": "Why?"})
    assert [m["role"] for m in messages] == ["system", "user"]
    system = messages[0]["content"]
    assert system.startswith("Your input fields are:\n1. `question` (str):")
    assert "[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]" in system
    assert system.endswith(
        "objective is: \n        Given the fields `question`, produce the fields `answer`."
    )
    assert messages[1]["content"] == (
        "[[ ## question ## ]]\nWhy?\n\nRespond with the corresponding output fields, starting "
        "with the field `[[ ## answer ## ]]`, and then ending with the marker for "
        "`[[ ## completed ## ]]`."
    )


def test_typed_outputs_get_notes_and_python_type_reminders() -> None:
    system, user = (m["content"] for m in CHAT.format(TYPED, [], {"question": "q"}))
    assert "{answer}        # note: the value you produce must be a single int value" in system
    assert "{sure}        # note: the value you produce must be True or False" in system
    assert "one of: yes; no" in system
    assert '"required": ["name"]' in system  # City's JSON schema
    assert "`[[ ## answer ## ]]` (must be formatted as a valid Python int)" in user
    assert "`[[ ## extra ## ]]` (must be formatted as a valid Python Union[int, NoneType])" in user


def test_system_message_is_built_once_per_signature() -> None:
    first = CHAT.format(TYPED, [], {"question": "a"})[0]["content"]
    second = CHAT.format(TYPED, [], {"question": "b"})[0]["content"]
    assert first is second


def test_input_values_are_rendered_by_type() -> None:
    sig = parse_signature(
        "passages, numbers: list[int], city: City, flag: bool, n -> out", types={"City": City}
    )
    user = CHAT.format(
        sig,
        [],
        {
            "passages": ["one", "two\nlines"],
            "numbers": [1, 2],
            "city": City(name="Oslo"),
            "flag": True,
            "n": None,
        },
    )[-1]["content"]
    assert "[[ ## passages ## ]]\n[1] «one»\n[2] «««\n    two\n    lines\n»»»" in user
    assert "[[ ## numbers ## ]]\n[1, 2]" in user
    assert '[[ ## city ## ]]\n{"name": "Oslo", "population": 0}' in user
    assert "[[ ## flag ## ]]\nTrue" in user
    assert "[[ ## n ## ]]\nNone" in user


def test_incomplete_demos_come_first_and_useless_demos_are_dropped() -> None:
    demos: list[dict[str, Any]] = [
        {"question": "complete", "answer": "A"},
        {"question": "no answer"},  # dropped: no output
        {"question": "partial", "answer": None},
    ]
    messages = CHAT.format(QA, demos, {"question": "now"})
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert messages[1]["content"].startswith("This is an example of the task, though some")
    assert "partial" in messages[1]["content"]
    assert messages[2]["content"] == "[[ ## answer ## ]]\nNone\n\n[[ ## completed ## ]]\n"
    assert messages[3]["content"] == "[[ ## question ## ]]\ncomplete"
    assert messages[4]["content"] == "[[ ## answer ## ]]\nA\n\n[[ ## completed ## ]]\n"


def test_missing_demo_outputs_are_marked_not_supplied() -> None:
    sig = parse_signature("q -> a, b")
    messages = CHAT.format(sig, [{"q": "x", "b": "B"}], {"q": "y"})
    assert messages[2]["content"] == (
        "[[ ## a ## ]]\nNot supplied for this particular example. \n\n[[ ## b ## ]]\nB"
        "\n\n[[ ## completed ## ]]\n"
    )


VALUES: dict[str, Any] = {
    "answer": 42,
    "sure": False,
    "score": 0.5,
    "tags": ["a", "b"],
    "label": "no",
    "city": {"name": "Oslo", "population": 700000},
    "extra": None,
}


def test_reply_round_trip() -> None:
    reply = CHAT.format_reply(TYPED, VALUES)
    assert reply.endswith("[[ ## completed ## ]]\n")
    assert CHAT.parse(TYPED, reply) == VALUES


def reply(**sections: str) -> str:
    return "\n\n".join(f"[[ ## {k} ## ]]\n{v}" for k, v in sections.items())


@pytest.mark.parametrize(
    ("field", "text", "expected"),
    [
        ("answer", "42", 42),
        ("answer", " 42.0 ", 42),
        ("sure", "True", True),
        ("sure", "false", False),
        ("score", "1e-1", 0.1),
        ("tags", "['x', 'y',]", ["x", "y"]),
        ("tags", 'Tags: ["x"] as asked', ["x"]),
        ("label", "'yes'", "yes"),
        ("label", "Literal['no']", "no"),
        ("city", '```json\n{"name": "Rome"}\n```', {"name": "Rome", "population": 0}),
        ("extra", "None", None),
        ("extra", "7", 7),
    ],
)
def test_values_are_coerced_to_the_field_type(field: str, text: str, expected: Any) -> None:
    sections = {name: _text(VALUES[name]) for name in TYPED.output_names}
    sections[field] = text
    parsed = CHAT.parse(TYPED, reply(**sections))
    assert parsed[field] == expected
    assert type(parsed[field]) is type(expected)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def test_sections_are_read_as_dspy_reads_them() -> None:
    sig = parse_signature("q -> a, b: int")
    completion = (
        "Let me think.\n  [[ ## a ## ]]  first line  \nsecond line\n[[ ## b ## ]]\n1\n"
        "[[ ## a ## ]]\nignored repeat\n[[ ## unknown ## ]]\nx\n[[ ## completed ## ]]\n"
    )
    assert CHAT.parse(sig, completion) == {"a": "first line\nsecond line", "b": 1}


def test_missing_optional_output_is_none() -> None:
    sig = parse_signature("q -> a, note: Optional[str]")
    assert CHAT.parse(sig, reply(a="x")) == {"a": "x", "note": None}


def test_missing_field_names_the_fields() -> None:
    completion = reply(answer="1", Sure="True")
    with pytest.raises(AdapterParseError) as info:
        CHAT.parse(TYPED, completion)
    err = info.value
    assert err.code == "unparseable_reply"
    assert err.adapter == "chat"
    assert err.completion == completion
    assert "sure, score, tags, label, city" in err.message
    assert "extra" not in err.message  # optional
    assert "sections found: answer, Sure" in err.message


def test_wrong_type_says_which_field_and_why() -> None:
    sig = parse_signature("q -> n: int")
    with pytest.raises(AdapterParseError) as info:
        CHAT.parse(sig, reply(n="abc"))
    assert info.value.code == "unparseable_reply"
    assert "output field 'n': 'abc' is not a valid int" in info.value.message
    assert "unable to parse string as an integer" in info.value.message


@pytest.mark.parametrize("completion", ["", "I'm sorry, I can't do that.", "answer: 4"])
def test_garbage_is_unparseable(completion: str) -> None:
    with pytest.raises(AdapterParseError, match=r"sections found: none") as info:
        CHAT.parse(QA, completion)
    assert info.value.code == "unparseable_reply"


def test_literal_outside_the_choices_is_rejected() -> None:
    sig = parse_signature("q -> label: Literal['yes', 'no']")
    with pytest.raises(AdapterParseError, match=r"Literal\['yes', 'no'\]"):
        CHAT.parse(sig, reply(label="maybe"))


def test_request_params_are_empty() -> None:
    assert CHAT.request_params(TYPED) == {}


def test_fields_built_in_python_behave_like_parsed_ones() -> None:
    sig = parse_signature("q -> a").append_output(FieldSpec("pick", Literal[1, 2]))
    assert CHAT.parse(sig, reply(a="x", pick="2")) == {"a": "x", "pick": 2}
