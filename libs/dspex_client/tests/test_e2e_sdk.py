"""The Python SDK against the whole stack: executions by request/reply and by the durable
consumer, inline specs, datasets by hash, runs followed from their events, and ``dspex
evaluate`` of a registered program in this process."""

from __future__ import annotations

from pathlib import Path

import pytest
from client_helpers import EXAMPLE, dspex, examples, explain, last_json, write_jsonl

from dspex_client import DSPExClient, InvalidInput, NotFound
from dspex_client.stack import Stack
from dspex_contracts import ExecuteCompleted, ExecuteFailed, RunCompleted, RunProgress
from dspex_kernel import ProgramSpec

pytestmark = pytest.mark.e2e

INLINE = {
    "name": "inline_qa",
    "stages": [{"name": "a", "module": "predict", "signature": "question -> answer: int"}],
    "configuration": {"defaults": {"model": "openai/sim-base"}},
}


async def test_execute_inline_by_reply_and_through_the_consumer(stack: Stack) -> None:
    question = examples("test", 1, 1)[0]["question"]
    async with DSPExClient(stack.nats_url) as client:
        answer = await client.execute(INLINE, {"question": question})
        assert isinstance(answer, ExecuteCompleted), answer
        assert answer.payload.program.name == "inline_qa"
        request_id = await client.publish_execute(INLINE, {"question": question})
        queued = await client.wait_answer(request_id, timeout_s=60)
        assert isinstance(queued, ExecuteCompleted)
        assert queued.payload.request_id == request_id
        # The same answer is found again by a client that did not publish the request.
        async with DSPExClient(stack.nats_url) as other:
            assert (await other.wait_answer(request_id, timeout_s=30)).id == queued.id
        failed = await client.execute(INLINE, {"wrong": 1})
        assert isinstance(failed, ExecuteFailed)
        assert failed.payload.error.code == "invalid_input"


async def test_sdk_registers_runs_and_follows(stack: Stack) -> None:
    spec = ProgramSpec.load(EXAMPLE / "program.yaml").model_dump(mode="json")
    spec["name"] = "sdk_qa"
    async with DSPExClient(stack.nats_url) as client:
        name, version = await client.register_program(spec, source="test")
        assert (name, version) == ("sdk_qa", 1)
        assert (await client.get_spec("sdk_qa")).name == "sdk_qa"
        train = await client.upload_dataset(examples("train", 200, 12))
        assert train == await client.upload_dataset(examples("train", 200, 12))
        run_id = await client.start_optimization(
            "sdk_qa",
            train,
            examples("dev", 90, 10),
            metric="numeric",
            strategy="random",
            params={"n_candidates": 2},
        )
        events = [event async for event in client.watch_run(run_id, timeout_s=120)]
        assert isinstance(events[-1], RunCompleted)
        assert all(isinstance(e, RunProgress) for e in events[:-1])
        assert events[-1].payload.status.value == "completed"
        # Another client, later, replays the same history from the stream.
        async with DSPExClient(stack.nats_url) as late:
            replay = [event.id async for event in late.watch_run(run_id, timeout_s=60)]
        assert replay == [e.id for e in events]
        with pytest.raises(NotFound):
            await client.get_run("no-such-run")
        with pytest.raises(InvalidInput):
            await client.publish_event("dspex.run.pause.v1", {"run_id": "bad id"})


def test_evaluate_a_registered_program_here(stack: Stack, tmp_path: Path) -> None:
    registered = dspex(["program", "register", str(EXAMPLE / "program.yaml")], stack.nats_url)
    assert registered.exit_code == 0, explain(registered)
    dataset = write_jsonl(tmp_path / "test.jsonl", examples("test", 10, 8))
    result = dspex(
        ["evaluate", "math_qa", "--dataset", str(dataset), "--metric", "numeric"], stack.nats_url
    )
    assert result.exit_code == 0, explain(result)
    summary = last_json(result)
    assert summary["n"] == 8
    assert summary["lm_calls"] == 8
    assert 0.0 <= summary["score"] <= 1.0
    assert "score" in result.stderr
