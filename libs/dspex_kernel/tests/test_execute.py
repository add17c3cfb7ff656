"""execute(): the fold over stages, overrides, fallbacks and every module kind, against
an in-memory scripted LM (the HTTP path is covered by the integration tests)."""

from __future__ import annotations

import json

import pytest

from dspex_kernel import (
    AdapterParseError,
    BM25Retriever,
    ConfigurationError,
    InputError,
    ProgramSpec,
    Runtime,
    Tool,
    execute,
)
from dspex_kernel.lm import LMRequest
from dspex_kernel.testing import ScriptedLM, chat_reply, requested_fields

pytestmark = pytest.mark.unit


def spec_of(*stages: dict[str, object], **extra: object) -> ProgramSpec:
    return ProgramSpec.from_data({"name": "t", "stages": list(stages), **extra})


def answer_42(request: LMRequest) -> str:
    fields = requested_fields(request)
    return chat_reply(**{f: ("because" if f == "reasoning" else "42") for f in fields})


async def test_predict_parses_types_and_traces() -> None:
    lm = ScriptedLM(answer_42)
    spec = spec_of({"name": "s", "module": "predict", "signature": "question -> answer: int"})
    result = await execute(spec, {"question": "6*7?"}, runtime=Runtime(lm, model="m"))
    assert result.outputs == {"answer": 42}
    assert result.values == {"question": "6*7?", "answer": 42}
    assert [t.stage for t in result.trace] == ["s"]
    assert result.trace[0].adapter == "chat"
    assert result.usage.calls == 1
    assert lm.requests[0].model == "m"


async def test_chain_of_thought_adds_reasoning() -> None:
    lm = ScriptedLM(answer_42)
    spec = spec_of({"name": "s", "module": "chain_of_thought", "signature": "q -> answer"})
    result = await execute(spec, {"q": "x"}, runtime=Runtime(lm, model="m"))
    assert result.outputs == {"reasoning": "because", "answer": "42"}
    assert requested_fields(lm.requests[0]) == ["reasoning", "answer"]


async def test_stages_fold_values_forward() -> None:
    corpus = ["Paris is the capital of France.", "Rome is in Italy.", "Cats purr."]

    def reply(request: LMRequest) -> str:
        assert "Paris is the capital of France." in request.messages[-1]["content"]
        return chat_reply(answer="Paris")

    spec = spec_of(
        {
            "name": "find",
            "module": "retrieve",
            "signature": "question -> passages: list[str]",
            "params": {"k": 2},
        },
        {
            "name": "answer",
            "module": "predict",
            "signature": "question, passages: list[str] -> answer",
        },
    )
    runtime = Runtime(ScriptedLM(reply), model="m", retrievers={"default": BM25Retriever(corpus)})
    result = await execute(spec, {"question": "What is the capital of France?"}, runtime=runtime)
    assert result.outputs == {"answer": "Paris"}
    assert result.values["passages"][0] == corpus[0]
    assert [t.stage for t in result.trace] == ["find", "answer"]


async def test_overrides_reach_the_request_and_are_validated() -> None:
    lm = ScriptedLM(answer_42)
    spec = spec_of(
        {"name": "s", "module": "predict", "signature": "q -> answer"},
        configuration={"defaults": {"model": "base"}},
        variables={
            "variables": [
                {"name": "t", "kind": "float", "low": 0, "high": 1, "path": "*.temperature"}
            ]
        },
    )
    runtime = Runtime(lm)
    await execute(
        spec, {"q": "x"}, {"t": 0.5, "s.model": "other", "s.max_tokens": 99}, runtime=runtime
    )
    request = lm.requests[-1]
    assert (request.temperature, request.model, request.max_tokens) == (0.5, "other", 99)
    with pytest.raises(ConfigurationError, match="outside"):
        await execute(spec, {"q": "x"}, {"t": 1.5}, runtime=runtime)
    with pytest.raises(ConfigurationError, match=r"variable 't'"):
        await execute(spec, {"q": "x"}, {"*.temperature": 1.5}, runtime=runtime)
    with pytest.raises(ConfigurationError, match="neither a variable"):
        await execute(spec, {"q": "x"}, {"ghost.temperature": 0.1}, runtime=runtime)
    with pytest.raises(ConfigurationError, match="unknown module kind"):
        await execute(spec, {"q": "x"}, {"s.module": "teleport"}, runtime=runtime)


async def test_missing_inputs_and_model() -> None:
    spec = spec_of({"name": "s", "module": "predict", "signature": "q, r -> a"})
    with pytest.raises(InputError, match=r"missing \['r'\]"):
        await execute(spec, {"q": "x"}, runtime=Runtime(ScriptedLM(answer_42), model="m"))
    with pytest.raises(ConfigurationError, match="no model"):
        await execute(spec, {"q": "x", "r": "y"}, runtime=Runtime(ScriptedLM(answer_42)))


async def test_chat_parse_error_falls_back_to_json_once() -> None:
    def reply(request: LMRequest) -> str:
        return '{"answer": 7}' if request.response_format else "I think it is seven."

    lm = ScriptedLM(reply)
    spec = spec_of({"name": "s", "module": "predict", "signature": "q -> answer: int"})
    result = await execute(spec, {"q": "x"}, runtime=Runtime(lm, model="m"))
    assert result.outputs == {"answer": 7}
    assert result.trace[0].adapter == "json"
    assert result.usage.calls == 2

    never = ScriptedLM(lambda r: "no structure at all")
    with pytest.raises(AdapterParseError) as info:
        await execute(spec, {"q": "x"}, runtime=Runtime(never, model="m"))
    assert info.value.code == "unparseable_reply"
    assert len(never.requests) == 2


async def test_react_calls_tools_then_extracts() -> None:
    calls: list[dict[str, int]] = []

    def add(a: int, b: int) -> int:
        """Adds two integers."""
        calls.append({"a": a, "b": b})
        return a + b

    def reply(request: LMRequest) -> str:
        fields = requested_fields(request)
        if "next_tool_name" in fields:
            done = "observation_0: 5" in request.messages[-1]["content"]
            return chat_reply(
                next_thought="add them" if not done else "done",
                next_tool_name="finish" if done else "add",
                next_tool_args=json.dumps({} if done else {"a": 2, "b": 3}),
            )
        return chat_reply(reasoning="the tool said 5", answer=5)

    spec = spec_of(
        {
            "name": "s",
            "module": "react",
            "signature": "q -> answer: int",
            "params": {"tools": ["add"], "max_iters": 4},
        }
    )
    runtime = Runtime(ScriptedLM(reply), model="m", tools={"add": Tool.from_function(add)})
    result = await execute(spec, {"q": "2+3"}, runtime=runtime)
    assert calls == [{"a": 2, "b": 3}]
    assert result.outputs["answer"] == 5
    assert len(result.trace) == 3


async def test_best_of_n_and_refine() -> None:
    answers = iter(["1", "2", "3", "9", "9"])

    def reply(request: LMRequest) -> str:
        if "advice" in requested_fields(request):
            return chat_reply(advice="try a bigger number")
        return chat_reply(answer=next(answers))

    def big(inputs: object, outputs: dict[str, int]) -> float:
        return 1.0 if outputs["answer"] >= 3 else outputs["answer"] / 3

    lm = ScriptedLM(reply)
    runtime = Runtime(lm, model="m", rewards={"big": big})
    bon = spec_of(
        {
            "name": "s",
            "module": "best_of_n",
            "signature": "q -> answer: int",
            "params": {"n": 5, "reward": "big"},
        }
    )
    result = await execute(bon, {"q": "x"}, runtime=runtime)
    assert result.outputs == {"answer": 3}
    assert [r.extra.get("rollout_id") for r in lm.requests] == [0, 1, 2]
    assert all(r.temperature == 1.0 for r in lm.requests)

    answers = iter(["1", "4"])
    lm.requests.clear()
    ref = spec_of(
        {
            "name": "s",
            "module": "refine",
            "signature": "q -> answer: int",
            "params": {"n": 3, "reward": "big"},
        }
    )
    result = await execute(ref, {"q": "x"}, runtime=runtime)
    assert result.outputs == {"answer": 4}
    assert "try a bigger number" in lm.requests[-1].messages[-1]["content"]
    with pytest.raises(Exception, match="reward"):
        await execute(
            spec_of({"name": "s", "module": "best_of_n", "signature": "q -> a"}),
            {"q": "x"},
            runtime=runtime,
        )
