"""The skill model end to end in-process: DSPy-format prompts (rendered by DSPy itself, so any
client works) get parseable replies whose correctness moves with CoT, demos, hints and
sampling as documented."""

from __future__ import annotations

import json
from typing import Any, Literal

import dspy
import pydantic
import pytest

from dspex_simlm.knowledge import KnowledgeBase
from dspex_simlm.responder import Reply, is_instruction_field, respond

pytestmark = pytest.mark.unit

KB = KnowledgeBase.load()
PREDICT = dspy.Signature("question -> answer: int")
COT = dspy.ChainOfThought(PREDICT).predict.signature
CHAT = dspy.ChatAdapter()


def ask(
    signature: Any,
    question: str,
    demos: list[dict[str, Any]] | None = None,
    adapter: Any = CHAT,
    model: str = "sim-base",
    **request: Any,
) -> Reply:
    messages = adapter.format(signature, demos=demos or [], inputs={"question": question})
    return respond({"messages": messages, **request}, model, KB)


def demos(rows: list[dict[str, Any]], shift: int = 0) -> list[dict[str, Any]]:
    return [{"question": r["question"], "answer": r["answer"] + shift} for r in rows]


def test_known_question_gets_a_parseable_answer(dev_rows: list[dict[str, Any]]) -> None:
    for adapter in (dspy.ChatAdapter(), dspy.JSONAdapter()):
        for signature in (PREDICT, COT):
            reply = ask(signature, dev_rows[0]["question"], adapter=adapter)
            parsed = adapter.parse(signature, reply.contents[0])
            assert isinstance(parsed["answer"], int)
            assert reply.outcome in {"correct", "wrong"}
            assert (parsed["answer"] == dev_rows[0]["answer"]) == (reply.outcome == "correct")


def test_each_factor_moves_p_as_documented(
    dev_rows: list[dict[str, Any]], train_rows: list[dict[str, Any]]
) -> None:
    question = dev_rows[3]["question"]
    plain = ask(PREDICT, question).p_correct
    assert plain == pytest.approx(0.55 - 0.3 * dev_rows[3]["difficulty"])
    assert ask(COT, question).p_correct == pytest.approx(plain + 0.15)
    assert ask(PREDICT, question, demos(train_rows[:3])).p_correct == pytest.approx(plain + 0.18)
    assert ask(PREDICT, question, demos(train_rows[:2], 1)).p_correct == pytest.approx(plain - 0.2)
    hinted = PREDICT.with_instructions("Work step by step and double-check the arithmetic.")
    assert ask(hinted, question).p_correct == pytest.approx(plain + 0.15)
    assert ask(PREDICT, question, model="sim-large").p_correct == pytest.approx(plain + 0.2)


def test_demos_without_answers_or_about_unknown_rows_do_not_count(
    dev_rows: list[dict[str, Any]], train_rows: list[dict[str, Any]]
) -> None:
    question = dev_rows[3]["question"]
    plain = ask(PREDICT, question).p_correct
    unknown = [{"question": "Who painted the ceiling?", "answer": 3}]
    unanswered = [{"question": train_rows[0]["question"]}]  # DSPy writes "Not supplied ..."
    assert ask(PREDICT, question, unknown + unanswered).p_correct == pytest.approx(plain)


def test_temperature_zero_is_deterministic(dev_rows: list[dict[str, Any]]) -> None:
    question = dev_rows[5]["question"]
    replies = {ask(COT, question, rollout_id=r, seed=r).contents[0] for r in range(8)}
    assert len(replies) == 1


def test_sampling_varies_with_rollout_id(dev_rows: list[dict[str, Any]]) -> None:
    question = dev_rows[5]["question"]
    outcomes = [ask(PREDICT, question, temperature=1.0, rollout_id=r).outcome for r in range(20)]
    assert set(outcomes) == {"correct", "wrong"}
    again = [ask(PREDICT, question, temperature=1.0, rollout_id=r).outcome for r in range(20)]
    assert again == outcomes


def test_n_choices_are_sampled_separately(dev_rows: list[dict[str, Any]]) -> None:
    reply = ask(PREDICT, dev_rows[5]["question"], temperature=1.0, n=12)
    assert len(reply.contents) == 12
    assert len(set(reply.contents)) > 1
    greedy = ask(PREDICT, dev_rows[5]["question"], n=3)
    assert len(set(greedy.contents)) == 1


class Person(pydantic.BaseModel):
    name: str
    age: int
    tags: list[str]


class Rich(dspy.Signature):
    """Describe the text."""

    text: str = dspy.InputField()
    label: Literal["positive", "negative", "neutral"] = dspy.OutputField()
    keywords: list[str] = dspy.OutputField()
    score: float = dspy.OutputField()
    flagged: bool = dspy.OutputField()
    counts: dict[str, int] = dspy.OutputField()
    person: Person = dspy.OutputField()
    summary: str = dspy.OutputField()


@pytest.mark.parametrize("adapter", [dspy.ChatAdapter(), dspy.JSONAdapter()], ids=["chat", "json"])
def test_unknown_tasks_get_well_formed_values_of_every_type(adapter: Any) -> None:
    messages = adapter.format(Rich, demos=[], inputs={"text": "The weather is lovely today."})
    reply = respond({"messages": messages}, "sim-small", KB)
    parsed = adapter.parse(Rich, reply.contents[0])
    assert reply.outcome == "unknown"
    assert parsed["label"] in {"positive", "negative", "neutral"}
    assert len(parsed["keywords"]) == 2
    assert isinstance(parsed["score"], float)
    assert isinstance(parsed["flagged"], bool)
    assert isinstance(parsed["counts"], dict)
    assert isinstance(parsed["person"], Person)
    assert "weather" in parsed["summary"]


def test_response_format_json_schema_gets_matching_json() -> None:
    schema = Person.model_json_schema()
    response_format = {"type": "json_schema", "json_schema": {"name": "p", "schema": schema}}
    messages = [{"role": "user", "content": "Invent a person."}]
    reply = respond({"messages": messages, "response_format": response_format}, "sim-base", KB)
    Person.model_validate(json.loads(reply.contents[0]))


def test_plain_chat_gets_a_sentence_or_the_answer(dev_rows: list[dict[str, Any]]) -> None:
    hello = respond({"messages": [{"role": "user", "content": "Hello there"}]}, "sim-base", KB)
    assert hello.outcome == "plain"
    assert "Hello there" in hello.contents[0]
    known = [{"role": "user", "content": dev_rows[0]["question"]}]
    reply = respond({"messages": known}, "sim-base", KB)
    assert reply.outcome in {"correct", "wrong"}
    assert reply.contents[0].startswith("The answer is")


PROPOSER = dspy.Signature(
    "dataset_description, program_code, tip -> proposed_instruction",
    "Propose an instruction for the program.",
)


def test_instruction_proposals_include_hints_only_sometimes(
    train_rows: list[dict[str, Any]],
) -> None:
    hints = KB.tasks[0].hints
    description = f"Word problems such as: {train_rows[0]['question']}"
    found: list[int] = []
    for tip in range(40):
        inputs = {"dataset_description": description, "program_code": "cot", "tip": f"tip {tip}"}
        messages = CHAT.format(PROPOSER, demos=[], inputs=inputs)
        text = CHAT.parse(PROPOSER, respond({"messages": messages}, "sim-base", KB).contents[0])
        found.append(sum(h in text["proposed_instruction"] for h in hints))
    assert 0 in found
    assert max(found) >= 2
    assert 0.2 < sum(found) / (len(hints) * len(found)) < 0.6


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("instruction", True),
        ("proposed_instruction", True),
        ("solve_rule", True),
        ("module_advice", True),
        ("Feedback", True),
        ("answer", False),
        ("ruler", False),
        ("rules_of_thumb", False),
    ],
)
def test_instruction_like_fields_are_named_or_suffixed(name: str, expected: bool) -> None:
    assert is_instruction_field(name) is expected


ADVICE = dspy.Signature(
    "module_names: list[str], worse_trajectory -> discussion, module_advice: dict[str, str]",
    "Give advice per module.",
)


@pytest.mark.unit
def test_advice_typed_as_a_dict_gets_one_instruction_per_listed_module() -> None:
    messages = dspy.ChatAdapter().format(
        ADVICE, demos=[], inputs={"module_names": ["self", "draft"], "worse_trajectory": "x"}
    )
    reply = respond({"messages": messages}, "sim-base", KB)
    parsed = dspy.ChatAdapter().parse(ADVICE, reply.contents[0])
    assert set(parsed["module_advice"]) == {"self", "draft"}
    assert all(isinstance(v, str) and v for v in parsed["module_advice"].values())
