"""The kernel service on a real nats-server with the simulated LM over HTTP: answers,
de-duplication, request/reply, dead letters, metrics, traces and a Node.js publisher."""

from __future__ import annotations

import json

import aiohttp
import pytest
from kernel_helpers import Kernel, eventually
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from dspex_contracts import (
    ExecuteCompleted,
    ExecuteFailed,
    ExecuteRequested,
    ExecuteRequestedPayload,
    ProgramRef,
    ProgramSource,
    subjects,
)
from dspex_runtime.lm_tracing import LM_SPAN_NAME
from dspex_runtime.telemetry import inject_trace_headers, start_span
from dspex_runtime.testing.node import run_node
from dspex_runtime.testing.tools import (
    ensure_node_nats,
    ensure_promtool,
    promtool_check_metrics,
    require_tool,
)

pytestmark = pytest.mark.integration

QUESTION = "Ann has 3 apples and buys 4 more. How many apples does she have?"


def request(name: str = "math_qa", **inputs: object) -> ExecuteRequested:
    return ExecuteRequested.create(
        ExecuteRequestedPayload(
            program=ProgramSource(ref=ProgramRef(name=name)),
            inputs=inputs or {"question": QUESTION},
        ),
        correlation_id="corr-test",
    )


async def test_request_is_answered_once_even_when_published_twice(kernel: Kernel) -> None:
    event = request()
    first = await kernel.client.send(event)
    second = await kernel.client.send(event)
    assert second.duplicate
    assert not first.duplicate
    answer = await kernel.client.answer_to(event.id)
    assert isinstance(answer, ExecuteCompleted)
    assert isinstance(answer.payload.outputs["answer"], int)
    assert answer.payload.program == ProgramRef(name="math_qa", version=1)
    assert answer.payload.usage.calls == 1
    assert (answer.causation_id, answer.correlation_id) == (event.id, "corr-test")
    info = await kernel.client.js.consumer_info("DSPEX_EXEC", "kernel")
    assert info.delivered.stream_seq >= 1
    await eventually(lambda: len(kernel.client.completed) >= 1, "the answer")
    assert [c.payload.request_id for c in kernel.client.completed].count(event.id) == 1


async def test_request_reply(kernel: Kernel) -> None:
    reply = await kernel.client.nc.request(
        subjects.EXEC_CALL, request().model_dump_json().encode(), timeout=20
    )
    answer = ExecuteCompleted.model_validate_json(reply.data)
    assert "answer" in answer.payload.outputs
    unknown = await kernel.client.nc.request(
        subjects.EXEC_CALL, request("no_such_program").model_dump_json().encode(), timeout=20
    )
    failed = ExecuteFailed.model_validate_json(unknown.data)
    assert failed.payload.error.code == "unknown_program"


async def test_bad_input_is_dead_lettered_and_the_service_keeps_serving(
    kernel: Kernel,
) -> None:
    good = json.loads(request().model_dump_json())
    wrong_version = {**good, "id": "v2", "version": 2}
    missing = {**good, "id": "missing", "payload": {"inputs": {"question": "x"}}}
    unknown = request("no_such_program")
    oversized = {
        **good,
        "id": "big",
        "payload": {**good["payload"], "inputs": {"question": "x" * 100_000}},
    }
    await kernel.client.publish(b"{not json", "malformed")
    await kernel.client.publish(json.dumps(wrong_version).encode(), "v2")
    await kernel.client.publish(json.dumps(missing).encode(), "missing")
    await kernel.client.send(unknown)
    await kernel.client.publish(json.dumps(oversized).encode(), "big")
    dead = await kernel.client.dead_letters(5)
    reasons = sorted(d["payload"]["reason"] for d in dead)
    assert reasons == sorted(
        [
            "invalid_message",
            "unsupported_version",
            "invalid_contract",
            "unknown_program",
            "too_large",
        ]
    )
    assert all(d["payload"]["service"] == "kernel" for d in dead)
    assert all(d["payload"]["message"] for d in dead)
    failed = await kernel.client.answer_to(unknown.id)
    assert isinstance(failed, ExecuteFailed)
    assert failed.payload.error.code == "unknown_program"
    after = request()
    await kernel.client.send(after)
    assert isinstance(await kernel.client.answer_to(after.id), ExecuteCompleted)


async def test_metrics_pass_promtool(kernel: Kernel, http: aiohttp.ClientSession) -> None:
    event = request()
    await kernel.client.send(event)
    await kernel.client.answer_to(event.id)
    async with http.get(f"{kernel.base_url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    assert "dspex_messages_handled_total{" in text
    assert "faststream_received_messages_total" in text
    promtool = require_tool(ensure_promtool(), "promtool")
    checked = promtool_check_metrics(promtool, text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    async with http.get(f"{kernel.base_url}/healthz") as response:
        assert response.status == 200
    async with http.get(f"{kernel.base_url}/readyz") as response:
        assert response.status == 204


async def test_metrics_count_executions_lm_calls_and_consumer_lag(
    kernel: Kernel, http: aiohttp.ClientSession
) -> None:
    first, again, unknown = request(), request(), request("no_such_program")
    for event in (first, again, unknown):
        await kernel.client.send(event)
        await kernel.client.answer_to(event.id)  # one at a time: the second is a cache hit
    async with http.get(f"{kernel.base_url}/metrics") as response:
        text = await response.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, tuple(sorted(labels.items()))))

    done = {"program": "math_qa", "outcome": "completed"}
    assert value("dspex_kernel_executions_total", **done) == 2
    assert value("dspex_kernel_execution_duration_seconds_count", **done) == 2
    unresolved = {"program": "(unresolved)", "outcome": "failed"}
    assert value("dspex_kernel_executions_total", **unresolved) == 1
    lm = {"service": "kernel", "model": "openai/sim-base"}
    assert value("dspex_lm_calls_total", **lm) == 2
    assert value("dspex_lm_cache_lookups_total", **lm, result="miss") == 1
    assert value("dspex_lm_cache_lookups_total", **lm, result="hit") == 1
    assert (value("dspex_lm_tokens_total", **lm, kind="prompt") or 0) > 0
    assert (value("dspex_lm_cost_usd_total", **lm) or 0) > 0
    assert value("dspex_lm_call_duration_seconds_count", **lm) == 2
    # Lag is refreshed in the background (its values are tested in dspex_runtime's tests).
    durable = {"stream": "DSPEX_EXEC", "consumer": "kernel"}
    assert value("dspex_consumer_pending_messages", **durable) is not None
    assert value("dspex_consumer_ack_pending_messages", **durable) is not None


async def test_trace_continues_from_the_publisher(
    kernel: Kernel, tracer_provider: TracerProvider
) -> None:
    exporter = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    event = request()
    with start_span("caller publishes", tracer_provider=tracer_provider) as span:
        await kernel.client.send(event, headers=inject_trace_headers())
        trace_id = span.get_span_context().trace_id
    await kernel.client.answer_to(event.id)

    def kernel_span_seen() -> bool:
        return any(
            s.context.trace_id == trace_id and s.name != "caller publishes"
            for s in exporter.get_finished_spans()
        )

    await eventually(kernel_span_seen, "a kernel span in the caller's trace")

    def lm_span_seen() -> bool:
        return any(
            s.context.trace_id == trace_id and s.name == LM_SPAN_NAME
            for s in exporter.get_finished_spans()
        )

    await eventually(lm_span_seen, "the LM call's span in the caller's trace")
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
    names = [s.name for s in spans]
    assert any(subjects.EXEC_REQUESTED in n for n in names), names
    (lm,) = [s for s in spans if s.name == LM_SPAN_NAME]
    assert lm.attributes is not None
    assert str(lm.attributes["gen_ai.request.model"]).endswith("sim-base")
    assert lm.attributes["gen_ai.usage.input_tokens"] > 0
    assert lm.start_time is not None
    assert lm.end_time is not None
    assert lm.end_time > lm.start_time


NODE_SCRIPT = """
import { connect, JSONCodec, headers } from "nats";
const nc = await connect({ servers: process.env.NATS_URL });
const jc = JSONCodec();
const js = nc.jetstream();
const sub = nc.subscribe("dspex.exec.completed.v1");
const id = "node-" + Date.now();
const h = headers();
h.set("Nats-Msg-Id", id);
await js.publish("dspex.exec.requested.v1", jc.encode({
  id, type: "ExecuteRequested", version: 1, occurred_at: new Date().toISOString(),
  payload: { program: { ref: { name: "math_qa" } },
             inputs: { question: process.env.QUESTION } },
}), { headers: h });
for await (const m of sub) {
  const answer = jc.decode(m.data);
  if (answer.payload.request_id === id) {
    console.log(JSON.stringify(answer));
    break;
  }
}
await nc.close();
"""


async def test_a_nodejs_publisher_gets_its_answer(kernel: Kernel) -> None:
    require_tool(ensure_node_nats(), "the npm package nats")
    done = await run_node(
        NODE_SCRIPT, env={"NATS_URL": kernel.url, "QUESTION": QUESTION}, timeout_s=60
    )
    assert done.returncode == 0, done.stderr
    answer = ExecuteCompleted.model_validate_json(done.stdout.strip().splitlines()[-1])
    assert answer.payload.request_id.startswith("node-")
    assert isinstance(answer.payload.outputs["answer"], int)
