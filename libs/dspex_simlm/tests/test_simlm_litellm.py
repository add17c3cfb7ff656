"""The simulated LM through litellm's real OpenAI HTTP path, as DSPEx and DSPy call it."""

from __future__ import annotations

import json
import os
from typing import Any

import dspy
import pydantic
import pytest

from dspex_simlm.testing import SimLMProcess, get_stats

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def litellm() -> Any:
    """Imported on first use: it takes seconds, which `-m unit` runs should not pay."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    return pytest.importorskip("litellm")


PREDICT = dspy.Signature("question -> answer: int")
COT = dspy.ChainOfThought(PREDICT).predict.signature
CHAT = dspy.ChatAdapter()


def client(sim: SimLMProcess) -> dict[str, Any]:
    return {
        "model": "openai/sim-base",
        "api_base": sim.api_base,
        "api_key": "sk-sim",
        "num_retries": 0,
        "max_retries": 0,
    }


async def content(
    litellm: Any, sim: SimLMProcess, messages: list[dict[str, str]], **kwargs: Any
) -> str:
    response = await litellm.acompletion(messages=messages, **client(sim), **kwargs)
    text: str = response.choices[0].message.content
    return text


async def test_plain_completion_reports_usage(litellm: Any, sim: SimLMProcess) -> None:
    response = await litellm.acompletion(
        messages=[{"role": "user", "content": "Say hello"}], **client(sim)
    )
    assert response.choices[0].message.content
    assert (
        response.usage.total_tokens
        == response.usage.prompt_tokens + response.usage.completion_tokens
    )


async def test_dspy_chat_prompts_parse(
    litellm: Any, sim: SimLMProcess, dev_rows: list[dict[str, Any]]
) -> None:
    for signature in (PREDICT, COT):
        messages = CHAT.format(signature, demos=[], inputs={"question": dev_rows[1]["question"]})
        parsed = CHAT.parse(signature, await content(litellm, sim, messages))
        assert isinstance(parsed["answer"], int)
    assert sum(get_stats(sim.api_base)["answers"].values()) == 2


class Verdict(pydantic.BaseModel):
    answer: int
    confidence: float
    explanation: str


async def test_response_format_gives_valid_json(litellm: Any, sim: SimLMProcess) -> None:
    messages = [{"role": "user", "content": "Give a verdict."}]
    Verdict.model_validate(
        json.loads(await content(litellm, sim, messages, response_format=Verdict))
    )
    loose = await content(litellm, sim, messages, response_format={"type": "json_object"})
    assert isinstance(json.loads(loose), dict)


async def test_json_adapter_prompts_parse(
    litellm: Any, sim: SimLMProcess, dev_rows: list[dict[str, Any]]
) -> None:
    adapter = dspy.JSONAdapter()
    messages = adapter.format(COT, demos=[], inputs={"question": dev_rows[2]["question"]})
    parsed = adapter.parse(
        COT, await content(litellm, sim, messages, response_format={"type": "json_object"})
    )
    assert isinstance(parsed["answer"], int)


async def test_faults_map_to_litellm_errors(litellm: Any, sim: SimLMProcess) -> None:
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(litellm.RateLimitError):
        await content(litellm, sim, messages, extra_headers={"X-Sim-Fault": "429"})
    with pytest.raises(litellm.InternalServerError):
        await content(litellm, sim, messages, extra_headers={"X-Sim-Fault": "500"})
    with pytest.raises(litellm.NotFoundError):
        await litellm.acompletion(messages=messages, **(client(sim) | {"model": "openai/gpt-x"}))


async def test_rollout_ids_reach_the_server(
    litellm: Any, sim: SimLMProcess, dev_rows: list[dict[str, Any]]
) -> None:
    messages = [{"role": "user", "content": dev_rows[5]["question"]}]
    hot = {await content(litellm, sim, messages, temperature=1.0, rollout_id=r) for r in range(12)}
    greedy = {
        await content(litellm, sim, messages, temperature=0.0, rollout_id=r) for r in range(4)
    }
    assert len(hot) > 1
    assert len(greedy) == 1
