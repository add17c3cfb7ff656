"""Signatures: string and class forms, types, and clear errors for bad input."""

from __future__ import annotations

from typing import Any, Literal

import pydantic
import pytest

from dspex_kernel.errors import SignatureError
from dspex_kernel.signature import (
    FieldSpec,
    InputField,
    OutputField,
    Signature,
    as_signature,
    infer_prefix,
    parse_signature,
    type_label,
)

pytestmark = pytest.mark.unit


def test_string_form_with_types() -> None:
    sig = parse_signature("question, context: list[str] -> answer: int")
    assert sig.input_names == ("question", "context")
    assert sig.output_names == ("answer",)
    assert sig.field("context").annotation == list[str]
    assert sig.field("answer").annotation is int
    assert sig.field("question").annotation is str
    assert (
        sig.instructions == "Given the fields `question`, `context`, produce the fields `answer`."
    )


def test_string_form_literal_dict_optional_union() -> None:
    sig = parse_signature(
        "text -> label: Literal['pos', 'neg'], scores: dict[str, float], "
        "note: Optional[str], n: int | None"
    )
    assert sig.field("label").annotation == Literal["pos", "neg"]
    assert sig.field("scores").annotation == dict[str, float]
    assert type_label(sig.field("note").annotation) == "Optional[str]"
    assert type_label(sig.field("n").annotation) == "Optional[int]"
    assert type_label(sig.field("label").annotation) == "Literal['pos', 'neg']"


def test_custom_types_by_name() -> None:
    class Person(pydantic.BaseModel):
        name: str

    sig = parse_signature("text -> people: list[Person]", types={"Person": Person})
    assert sig.field("people").annotation == list[Person]


def test_round_trip_to_string() -> None:
    text = "question, context: list[str] -> answer: int"
    assert parse_signature(text).to_string() == text
    assert parse_signature(parse_signature(text).to_string()) == parse_signature(text)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("question answer", "exactly one '->'"),
        ("a -> b -> c", "exactly one '->'"),
        ("question ->", "no output fields"),
        ("1abc -> answer", "not a valid field name"),
        ("q -> answer: Foo", "unknown type 'Foo'"),
        ("q -> answer: list[int", "unbalanced"),
        ("q -> answer: __import__('os')", "unsupported type expression"),
        ("q, q -> a", "appears twice"),
        ("q -> completed", "reserved"),
    ],
)
def test_invalid_signature_strings_have_clear_errors(text: str, fragment: str) -> None:
    with pytest.raises(SignatureError) as info:
        parse_signature(text)
    assert fragment in str(info.value)
    assert info.value.code == "invalid_signature"


def test_class_form() -> None:
    class QA:
        """Answer with a number.

        Be brief."""

        question: str = InputField(desc="the question")
        hints: list[str] = InputField()
        answer: int = OutputField(desc="a number")

    sig = as_signature(QA)
    assert sig.instructions == "Answer with a number.\n\nBe brief."
    assert sig.input_names == ("question", "hints")
    assert sig.field("question").description == "the question"
    assert sig.field("answer").annotation is int


def test_class_form_rejects_unmarked_attributes() -> None:
    class Bad:
        question: str = InputField()
        answer: int = 3

    with pytest.raises(SignatureError, match="InputField"):
        as_signature(Bad)


def test_derived_signatures_keep_explicit_instructions() -> None:
    sig = parse_signature("q -> a", "Do it well.")
    longer = sig.prepend_output(FieldSpec("reasoning"))
    assert longer.output_names == ("reasoning", "a")
    assert longer.instructions == "Do it well."
    plain = parse_signature("q -> a").append_input(FieldSpec("hint"))
    assert plain.instructions == "Given the fields `q`, `hint`, produce the fields `a`."


def test_prefix_inference() -> None:
    assert infer_prefix("question") == "Question:"
    assert infer_prefix("next_tool_name") == "Next Tool Name:"


def test_not_a_signature() -> None:
    bad: Any = 42
    with pytest.raises(SignatureError):
        as_signature(bad)
    with pytest.raises(SignatureError):
        Signature((), ())
