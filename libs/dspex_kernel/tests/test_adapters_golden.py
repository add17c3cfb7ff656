"""Golden tests against DSPy itself: our chat and JSON messages equal what DSPy 3.4 renders
for the same signature, demos and inputs, and our parsers agree with DSPy's on the same
replies. The DSPy signature is built from ours, so the mapping is exercised every time."""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import pydantic
import pytest

from dspex_kernel.adapters import ChatAdapter, JSONAdapter
from dspex_kernel.errors import AdapterParseError
from dspex_kernel.signature import (
    FieldSpec,
    InputField,
    OutputField,
    Signature,
    parse_signature,
    signature_from_class,
)

# dspy may import litellm, which must not fetch its cost map over the network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import dspy
from dspy.utils.exceptions import AdapterParseError as DSPyParseError

pytestmark = pytest.mark.unit


# -- building DSPy's side from ours ----------------------------------------------------------
def to_dspy(sig: Signature) -> Any:
    """The DSPy signature with the same fields, types, descriptions and instructions."""

    def make(spec: FieldSpec, kind: Callable[..., Any]) -> tuple[Any, Any]:
        return spec.annotation, kind(desc=spec.description) if spec.description else kind()

    fields = {f.name: make(f, dspy.InputField) for f in sig.inputs}
    fields.update({f.name: make(f, dspy.OutputField) for f in sig.outputs})
    return dspy.make_signature(fields, sig.instructions)


def normalize(values: Mapping[str, Any]) -> dict[str, Any]:
    """DSPy's parsed values made JSON-ready, as ours are."""

    def one(v: Any) -> Any:
        if isinstance(v, pydantic.BaseModel):
            return v.model_dump(mode="json")
        if isinstance(v, enum.Enum):
            return v.value
        if isinstance(v, tuple | list):
            return [one(x) for x in v]
        if isinstance(v, dict):
            return {k: one(x) for k, x in v.items()}
        return v

    return {k: one(v) for k, v in values.items()}


# -- the signatures ---------------------------------------------------------------------------
class Person(pydantic.BaseModel):
    name: str
    age: int = 0
    tags: list[str] = []


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Review:
    """Classify the sentiment of a product review.

    Be strict: mixed reviews are "neutral"."""

    review: str = InputField(desc="the review text")
    product: str = InputField()
    sentiment: Literal["positive", "negative", "it's neutral"] = OutputField(desc="the label")
    stars: Literal[1, 2, 3, 4, 5] = OutputField(desc="how many stars")


class Checks:
    """Check the claim against the evidence."""

    claim: str = InputField(desc="a factual claim")
    evidence: list[str] = InputField(desc="retrieved passages")
    supported: bool = OutputField(desc="whether the evidence supports the claim")
    confidence: float = OutputField()
    color: Color = OutputField()


class Extract:
    """Extract the people mentioned in the text."""

    text: str = InputField()
    people: list[Person] = OutputField(desc="everyone named")
    main: Person = OutputField(desc="the main character")
    age_of_main: Optional[int] = OutputField()  # noqa: UP045 - DSPy names it Union[...]


@dataclass(frozen=True)
class Case:
    sig: Signature
    inputs: dict[str, Any]
    demos: list[dict[str, Any]] = field(default_factory=list)
    incomplete: list[dict[str, Any]] = field(default_factory=list)


CASES: dict[str, Case] = {
    "string_untyped": Case(
        parse_signature("question -> answer"),
        {"question": "What is the capital of France?"},
        [{"question": "2+2?", "answer": "4"}, {"question": "Sky?", "answer": "blue"}],
        # A missing output, a None value, and a demo with no output at all (dropped).
        [
            {"question": "1+1?"},
            {"question": "x?", "answer": None},
            {"answer": "lonely"},
            {"question": "only input"},
        ],
    ),
    "string_typed": Case(
        parse_signature(
            "question, context: list[str] -> answer: int, confidence: float",
            descriptions={"answer": "the number", "question": "a math question"},
        ),
        {"question": "How many?", "context": ["one apple", "two pears\nand a plum"]},
        [{"question": "q", "context": ["c"], "answer": 3, "confidence": 0.5}],
        [{"context": ["only context"], "answer": 1}],
    ),
    "class_descriptions_literal": Case(
        signature_from_class(Review),
        {"review": "Great «value», broke after a week.", "product": "kettle"},
        [{"review": "Love it", "product": "mug", "sentiment": "positive", "stars": 5}],
        [{"review": "meh", "sentiment": "it's neutral"}],
    ),
    "bool_float_enum_list_input": Case(
        signature_from_class(Checks),
        {"claim": "Water boils at 100 C.", "evidence": []},
        [
            {
                "claim": "c",
                "evidence": ["e1", "e2"],
                "supported": True,
                "confidence": 0.9,
                "color": Color.RED,
            }
        ],
        [{"claim": "c2", "supported": False}],
    ),
    "str_field_given_a_list": Case(
        parse_signature("context, question -> answer"),
        {"context": ["first passage", "second\npassage", "has «quotes»"], "question": "q"},
        [
            {"context": ["only one"], "question": "q", "answer": "a"},
            {"context": [], "question": "q", "answer": "b"},
        ],
    ),
    "dict_output_and_inputs": Case(
        parse_signature("record: dict[str, int], note -> counts: dict[str, int], total: int"),
        {"record": {"a": 1, "ü": 2}, "note": "unicode ok"},
        [{"record": {"x": 1}, "note": "n", "counts": {"x": 1}, "total": 1}],
        [{"record": {"y": 2}, "counts": {"y": 2}}],
    ),
    "pydantic_output": Case(
        signature_from_class(Extract),
        {"text": "Ada met Alan."},
        [
            {
                "text": "Bo",
                "people": [Person(name="Bo")],
                "main": Person(name="Bo", age=3),
                "age_of_main": 3,
            }
        ],
        [{"text": "Cy", "main": {"name": "Cy", "age": 1, "tags": ["x"]}}],
    ),
    "misc_types": Case(
        parse_signature(
            "items: list[int], flag: bool -> maybe: Optional[str], either: int | None, "
            "anything: Any, pair: tuple[int, str], picks: list[Literal['a', 'b']]"
        ),
        {"items": [1, 2, 3], "flag": True},
        [
            {
                "items": [1],
                "flag": False,
                "maybe": "m",
                "either": 2,
                "anything": {"k": [1]},
                "pair": (1, "x"),
                "picks": ["a"],
            }
        ],
    ),
}


def with_reasoning(sig: Signature) -> Signature:
    """ChainOfThought's signature: ``reasoning`` first, the instructions unchanged."""
    return sig.prepend_output(FieldSpec("reasoning", str)).with_instructions(sig.instructions)


def dspy_signature(sig: Signature, cot: bool) -> Any:
    return dspy.ChainOfThought(to_dspy(sig)).predict.signature if cot else to_dspy(sig)


def variants() -> list[Any]:
    out = []
    for name, case in CASES.items():
        kinds = ("none", "complete", "mixed") if case.incomplete else ("none", "complete")
        cots = (False, True) if name in ("string_untyped", "string_typed") else (False,)
        for which in kinds:
            for cot in cots:
                label = f"{name}-{which}-{'cot' if cot else 'predict'}"
                out.append(pytest.param(name, which, cot, id=label))
    return out


def demos_for(case: Case, which: str) -> list[dict[str, Any]]:
    if which == "none":
        return []
    if which == "complete":
        return case.demos
    return [*case.demos, *case.incomplete]


@pytest.mark.parametrize(("name", "which", "cot"), variants())
@pytest.mark.parametrize("kind", ["chat", "json"])
def test_messages_equal_dspy(kind: str, name: str, which: str, cot: bool) -> None:
    case = CASES[name]
    ours_sig = with_reasoning(case.sig) if cot else case.sig
    demos = demos_for(case, which)
    if cot:
        demos = [{**d, "reasoning": "step by step"} for d in demos]
    theirs = (dspy.ChatAdapter() if kind == "chat" else dspy.JSONAdapter()).format(
        dspy_signature(case.sig, cot),
        demos=[dspy.Example(**d) for d in demos],
        inputs=case.inputs,
    )
    ours = (ChatAdapter() if kind == "chat" else JSONAdapter()).format(ours_sig, demos, case.inputs)
    assert ours == theirs


def test_every_case_is_rendered_with_demos_of_both_kinds() -> None:
    # The incomplete demos must really be incomplete, or the "mixed" variants prove little.
    for name, case in CASES.items():
        if case.incomplete:
            msgs = ChatAdapter().format(case.sig, case.incomplete, case.inputs)
            assert "some input or output fields are not supplied" in msgs[1]["content"], name


# -- parsing agrees with DSPy ---------------------------------------------------------------
REPLIES: dict[str, dict[str, Any]] = {
    "string_typed": {"answer": 42, "confidence": 0.25},
    "class_descriptions_literal": {"sentiment": "it's neutral", "stars": 3},
    "bool_float_enum_list_input": {"supported": False, "confidence": 1.0, "color": "green"},
    "dict_output_and_inputs": {"counts": {"a": 1, "b": 2}, "total": 3},
    "pydantic_output": {
        "people": [
            {"name": "Ada", "age": 36, "tags": []},
            {"name": "Alan", "age": 41, "tags": ["math"]},
        ],
        "main": {"name": "Ada", "age": 36, "tags": ["ü"]},
        "age_of_main": 36,
    },
    "misc_types": {
        "maybe": "perhaps",
        "either": None,
        "anything": [1, {"a": None}],
        "pair": [7, "seven"],
        "picks": ["b", "a"],
    },
}


@pytest.mark.parametrize("kind", ["chat", "json"])
@pytest.mark.parametrize("name", list(REPLIES))
def test_reply_round_trip_agrees_with_dspy(kind: str, name: str) -> None:
    sig, values = CASES[name].sig, REPLIES[name]
    theirs_adapter = dspy.ChatAdapter() if kind == "chat" else dspy.JSONAdapter()
    ours_adapter = ChatAdapter() if kind == "chat" else JSONAdapter()
    reply = theirs_adapter.format_assistant_message_content(to_dspy(sig), values)
    assert ours_adapter.format_reply(sig, values) == reply
    assert ours_adapter.parse(sig, reply) == values
    assert normalize(theirs_adapter.parse(to_dspy(sig), reply)) == values


def chat_reply(**sections: str) -> str:
    return "\n\n".join(f"[[ ## {k} ## ]]\n{v}" for k, v in sections.items())


TYPED = parse_signature("q -> answer: int, ok: bool, tags: list[str], choice: Literal['x', 'y']")
CHAT_COMPLETIONS = [
    chat_reply(answer="42", ok="True", tags='["a"]', choice="x"),
    chat_reply(answer=" 42.0 ", ok="true", tags="['a', 'b',]", choice="'y'"),
    chat_reply(answer="7", ok="yes", tags='The tags: ["a", "b"]', choice="Literal['x']"),
    chat_reply(answer="7", ok="no", tags='```json\n["c"]\n```', choice="y"),
    "Preamble text\n[[ ## answer ## ]] 5\n[[ ## ok ## ]]\nFalse\n[[ ## tags ## ]]\n[]\n"
    "[[ ## choice ## ]]\nx\n[[ ## answer ## ]]\n6\n[[ ## completed ## ]]\ntrailing",
    "[[ ## answer ## ]]\r\n3\r\n[[ ## ok ## ]]\r\nTrue\r\n[[ ## tags ## ]]\r\n[]\r\n"
    "[[ ## choice ## ]]\r\nx",
    chat_reply(answer="abc", ok="True", tags="[]", choice="x"),
    chat_reply(answer="4.5", ok="True", tags="[]", choice="x"),
    chat_reply(answer="1", ok="maybe", tags="[]", choice="x"),
    chat_reply(answer="1", ok="True", tags="a, b", choice="x"),
    chat_reply(answer="1", ok="True", tags="[]", choice="z"),
    chat_reply(answer="1", ok="True", tags="[]"),
    chat_reply(Answer="1", ok="True", tags="[]", choice="x"),
    "I cannot help with that.",
    "",
]


@pytest.mark.parametrize("completion", CHAT_COMPLETIONS)
def test_chat_parse_agrees_with_dspy(completion: str) -> None:
    _agree(dspy.ChatAdapter(), ChatAdapter().parse, TYPED, completion)


JSON_COMPLETIONS = [
    '{"answer": 1, "ok": true, "tags": ["a"], "choice": "x"}',
    '```json\n{"answer": "2", "ok": "False", "tags": "[\\"b\\"]", "choice": "y"}\n```',
    'Sure: {"answer": 3, "ok": false, "tags": ["{not a brace}"], "choice": "x"} Done.',
    "{'answer': 4, 'ok': True, 'tags': ['a',], 'choice': 'y'}",
    '{"answer": 5.0, "ok": 1, "tags": [], "choice": "x", "extra": "dropped"}',
    '{"answer": "five", "ok": true, "tags": [], "choice": "x"}',
    '{"answer": 1, "ok": true, "tags": []}',
    '["not", "an", "object"]',
    "no json at all",
]


@pytest.mark.parametrize("completion", JSON_COMPLETIONS)
def test_json_parse_agrees_with_dspy(completion: str) -> None:
    _agree(dspy.JSONAdapter(), JSONAdapter().parse, TYPED, completion)


def _agree(
    theirs: Any, ours: Callable[[Signature, str], dict[str, Any]], sig: Signature, completion: str
) -> None:
    try:
        expected: dict[str, Any] | None = normalize(theirs.parse(to_dspy(sig), completion))
    except DSPyParseError:
        expected = None
    if expected is None:
        with pytest.raises(AdapterParseError) as info:
            ours(sig, completion)
        assert info.value.code == "unparseable_reply"
        assert info.value.completion == completion
    else:
        got = ours(sig, completion)
        assert got == expected
        assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in expected.items()}
