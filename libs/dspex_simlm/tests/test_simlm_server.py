"""The real server over loopback: OpenAI shapes, admin endpoints, injected faults, concurrent
latency, and the skill model's ordering measured over the dev split."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import dspy
import pytest

from dspex_simlm.testing import SimLMProcess, SimLMStartError, get_stats, set_config

pytestmark = pytest.mark.integration

PREDICT = dspy.Signature("question -> answer: int")
COT = dspy.ChainOfThought(PREDICT).predict.signature
CHAT = dspy.ChatAdapter()
HELLO = [{"role": "user", "content": "Hello"}]


def post(
    sim: SimLMProcess,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
    timeout_s: float = 10.0,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    request = urllib.request.Request(
        sim.api_base + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def get(sim: SimLMProcess, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(sim.url + path, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def test_completion_has_the_openai_shape(sim: SimLMProcess) -> None:
    status, _, body = post(sim, {"model": "sim-base", "messages": HELLO})
    assert status == 200
    assert body["object"] == "chat.completion"
    assert body["model"] == "sim-base"
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] == 2  # ceil(len("Hello") / 4)
    assert usage["completion_tokens"] == -(-len(choice["message"]["content"]) // 4)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_models_health_and_unknown_model(sim: SimLMProcess) -> None:
    assert [m["id"] for m in get(sim, "/v1/models")["data"]] == [
        "sim-small",
        "sim-base",
        "sim-large",
    ]
    assert get(sim, "/healthz") == {"status": "ok", "rows": 600}
    status, _, body = post(sim, {"model": "gpt-4o", "messages": HELLO})
    assert status == 404
    assert body["error"]["code"] == "model_not_found"
    status, _, body = post(sim, {"model": "sim-base"})
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"


def test_dspy_prompts_get_replies_dspy_can_parse(
    sim: SimLMProcess, dev_rows: list[dict[str, Any]]
) -> None:
    row = dev_rows[7]
    for signature in (PREDICT, COT):
        messages = CHAT.format(signature, demos=[], inputs={"question": row["question"]})
        status, _, body = post(sim, {"model": "sim-large", "messages": messages})
        parsed = CHAT.parse(signature, body["choices"][0]["message"]["content"])
        assert status == 200
        assert isinstance(parsed["answer"], int)
    answers = get_stats(sim.api_base)["answers"]
    assert answers.get("correct", 0) + answers.get("wrong", 0) == 2


def test_forced_429_has_retry_after(sim: SimLMProcess) -> None:
    set_config(sim.api_base, retry_after_s=1.5)
    status, headers, body = post(
        sim, {"model": "sim-base", "messages": HELLO}, {"X-Sim-Fault": "429"}
    )
    assert status == 429
    assert body["error"]["type"] == "rate_limit_error"
    assert headers["Retry-After"] == "1.5"
    assert headers["retry-after-ms"] == "1500"


def test_forced_500_and_malformed(sim: SimLMProcess, dev_rows: list[dict[str, Any]]) -> None:
    status, _, body = post(sim, {"model": "sim-base", "messages": HELLO}, {"X-Sim-Fault": "500"})
    assert status == 500
    assert body["error"]["type"] == "server_error"
    messages = CHAT.format(PREDICT, demos=[], inputs={"question": dev_rows[0]["question"]})
    status, _, body = post(
        sim, {"model": "sim-base", "messages": messages}, {"X-Sim-Fault": "malformed"}
    )
    content = body["choices"][0]["message"]["content"]
    assert status == 200
    assert "[[ ##" not in content
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)
    with pytest.raises(Exception, match="parse"):
        CHAT.parse(PREDICT, content)
    assert get_stats(sim.api_base)["faults_injected"] == {"500": 1, "malformed": 1}


def test_forced_timeout_hangs_past_the_client_deadline(sim: SimLMProcess) -> None:
    with pytest.raises(TimeoutError):
        post(
            sim, {"model": "sim-base", "messages": HELLO}, {"X-Sim-Fault": "timeout"}, timeout_s=0.5
        )
    status, _, _ = post(sim, {"model": "sim-base", "messages": HELLO})
    assert status == 200  # the hanging request does not block others


def test_bad_fault_header_and_bad_config_are_rejected(sim: SimLMProcess) -> None:
    status, _, _ = post(sim, {"model": "sim-base", "messages": HELLO}, {"X-Sim-Fault": "boom"})
    assert status == 400
    with pytest.raises(urllib.error.HTTPError) as error:
        set_config(sim.api_base, fault_rate=2.0)
    assert error.value.code == 400
    with pytest.raises(urllib.error.HTTPError):
        set_config(sim.api_base, host="0.0.0.0")


def test_fault_rate_set_at_run_time(sim: SimLMProcess) -> None:
    config = set_config(sim.api_base, fault_rate=1.0, fault_kinds=["500"])
    assert config["fault_rate"] == 1.0
    assert config["fault_kinds"] == ["500"]
    assert post(sim, {"model": "sim-base", "messages": HELLO})[0] == 500
    set_config(sim.api_base, fault_rate=0.0)
    assert post(sim, {"model": "sim-base", "messages": HELLO})[0] == 200
    stats = get_stats(sim.api_base)
    assert stats["faults_injected"] == {"500": 1}
    assert stats["responses_by_status"] == {
        "500": 1,
        "200": 1,
    }


def test_faults_do_not_depend_on_the_request(sim: SimLMProcess) -> None:
    set_config(sim.api_base, fault_rate=0.5, fault_kinds=["429", "500"], seed=7)
    first = [post(sim, {"model": "sim-base", "messages": HELLO})[0] for _ in range(30)]
    assert {200, 429, 500} <= set(first)  # the same request fails, then a retry succeeds
    set_config(sim.api_base, seed=7)
    assert [post(sim, {"model": "sim-base", "messages": HELLO})[0] for _ in range(30)] == first


async def test_latency_does_not_serialise_requests(sim: SimLMProcess) -> None:
    headers = {"X-Sim-Latency-Ms": "300"}
    body = {"model": "sim-base", "messages": HELLO}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> int:
            async with session.post(
                sim.api_base + "/chat/completions", json=body, headers=headers
            ) as r:
                await r.read()
                return r.status

        started = time.perf_counter()
        statuses = await asyncio.gather(*(one() for _ in range(200)))
        print(f"200 requests at 300 ms latency took {time.perf_counter() - started:.2f}s")
    assert statuses == [200] * 200
    assert get_stats(sim.api_base)["max_in_flight"] >= 20


def test_streaming_sends_one_chunk_and_done(sim: SimLMProcess) -> None:
    body = {
        "model": "sim-base",
        "messages": HELLO,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    request = urllib.request.Request(
        sim.api_base + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        events = [line for line in response.read().decode().split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["content"]
    assert chunks[-1]["usage"]["total_tokens"] > 0


def test_bad_arguments_fail_start_with_the_stderr_tail() -> None:
    with pytest.raises(SimLMStartError, match="fault kinds"), SimLMProcess(fault_kinds=["boom"]):
        pass


def test_readme_example_runs() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", readme, re.DOTALL)
    assert block is not None
    exec(compile(block.group(1), "README.md", "exec"), {})


async def accuracy(
    session: aiohttp.ClientSession,
    api_base: str,
    signature: Any,
    demos: list[dict[str, Any]],
    rows: list[dict[str, Any]],
) -> float:
    async def correct(row: dict[str, Any]) -> bool:
        messages = CHAT.format(signature, demos=demos, inputs={"question": row["question"]})
        body = {"model": "sim-base", "messages": messages, "temperature": 0}
        async with session.post(api_base + "/chat/completions", json=body) as response:
            content = (await response.json())["choices"][0]["message"]["content"]
        return bool(CHAT.parse(signature, content)["answer"] == row["answer"])

    return sum(await asyncio.gather(*(correct(r) for r in rows))) / len(rows)


async def test_better_prompts_score_better_on_dev(
    sim: SimLMProcess, dev_rows: list[dict[str, Any]], train_rows: list[dict[str, Any]]
) -> None:
    good = [{"question": r["question"], "answer": r["answer"]} for r in train_rows[:3]]
    bad = [{"question": r["question"], "answer": r["answer"] + 2} for r in train_rows[:3]]
    async with aiohttp.ClientSession() as session:
        cot_good = await accuracy(session, sim.api_base, COT, good, dev_rows)
        plain = await accuracy(session, sim.api_base, PREDICT, [], dev_rows)
        plain_bad = await accuracy(session, sim.api_base, PREDICT, bad, dev_rows)
    print(
        f"dev accuracy: CoT+3 correct demos {cot_good:.2f}, predict {plain:.2f}, "
        f"predict+3 wrong demos {plain_bad:.2f}"
    )
    assert cot_good >= plain + 0.2
    assert plain >= plain_bad + 0.2
