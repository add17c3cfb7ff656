"""Request/reply, the HTTP endpoints (health, readiness across a broker restart, metrics,
AsyncAPI docs) and the streams the runtime declares."""

from __future__ import annotations

import json

import pytest
from nats.js.api import StorageType
from prometheus_client.parser import text_string_to_metric_families
from runtime_helpers import DURABLE, Running, eventually, request

from dspex_contracts import DeadLettered, ExecuteCompleted, subjects
from dspex_contracts.subjects import STREAMS
from dspex_runtime import ServiceRuntime, ServiceSettings
from dspex_runtime.asgi import readyz
from dspex_runtime.testing.nats import NatsServer

pytestmark = pytest.mark.integration


async def test_request_reply_answers_with_the_handlers_envelope(running: Running) -> None:
    event = request("ok", question="hi")
    reply = await running.bus.nc.request(
        subjects.EXEC_CALL, event.model_dump_json().encode(), timeout=10
    )

    answer = ExecuteCompleted.model_validate_json(reply.data)
    assert answer.payload.request_id == event.id
    assert answer.payload.outputs == {"mode": "ok", "question": "hi"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{oops", "invalid_message"),
        (b'{"type": "ExecuteRequested", "version": 1}', "invalid_contract"),
        (request("dead").model_dump_json().encode(), "unknown_program"),
    ],
    ids=["malformed", "missing-fields", "handler-dead-letter"],
)
async def test_a_bad_request_gets_an_error_reply(
    running: Running, body: bytes, reason: str
) -> None:
    reply = await running.bus.nc.request(subjects.EXEC_CALL, body, timeout=10)

    error = DeadLettered.model_validate_json(reply.data)
    assert error.payload.reason == reason
    assert error.payload.subject == subjects.EXEC_CALL
    # ...and the responder still answers the next one.
    good = await running.bus.nc.request(
        subjects.EXEC_CALL, request("ok").model_dump_json().encode(), timeout=10
    )
    assert ExecuteCompleted.model_validate_json(good.data).type == "ExecuteCompleted"


async def test_health_and_docs(running: Running) -> None:
    async with running.http.get(f"{running.base_url}/healthz") as resp:
        assert resp.status == 200
    async with running.http.get(f"{running.base_url}/readyz") as resp:
        assert resp.status == 204
    async with running.http.get(f"{running.base_url}/docs.json") as resp:
        assert resp.status == 200
        spec = json.loads(await resp.text())
    channels = json.dumps(spec["channels"])
    assert subjects.EXEC_REQUESTED in channels
    assert subjects.EXEC_CALL in channels
    assert spec["info"]["title"] == "DSPEx echo"
    # The contract, not FastStream's raw-bytes view of it, is the documented payload.
    payload = spec["components"]["schemas"]["ExecuteRequested"]
    assert payload["properties"]["type"]["const"] == "ExecuteRequested"


async def test_readyz_fails_while_nats_is_down_and_recovers(
    running: Running, nats_server: NatsServer
) -> None:
    async def status() -> int:
        async with running.http.get(f"{running.base_url}/readyz") as resp:
            return resp.status

    nats_server.stop()

    async def unready() -> bool:
        return await status() == 500

    await eventually(unready, "/readyz to fail")
    async with running.http.get(f"{running.base_url}/healthz") as resp:
        assert resp.status == 200  # alive, only not ready

    nats_server.start()

    async def ready() -> bool:
        return await status() == 204

    await eventually(ready, "/readyz to recover")
    # Consuming resumed on the same durable consumer after the reconnect.
    event = request("ok")
    await running.bus.send(event)
    await running.bus.wait_completed(event.id)


async def test_metrics(running: Running) -> None:
    ok, dead = request("ok"), request("dead")
    await running.bus.send(ok)
    await running.bus.send(dead)
    await running.bus.wait_completed(ok.id)
    await running.bus.wait_dead(1)
    await running.bus.settled()

    async with running.http.get(f"{running.base_url}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    labels = {"service": "echo", "subject": subjects.EXEC_REQUESTED}

    def value(name: str, **extra: str) -> float:
        return samples[(name, tuple(sorted({**labels, **extra}.items())))]

    assert value("dspex_messages_handled_total", outcome="ok") == 1
    assert value("dspex_messages_handled_total", outcome="dead_lettered") == 1
    assert value("dspex_dead_letters_total", reason="unknown_program") == 1
    assert value("dspex_handler_duration_seconds_count") == 2
    assert any(name == "faststream_received_messages_total" for name, _ in samples)
    lag = (("consumer", DURABLE), ("stream", "DSPEX_EXEC"))
    # Refreshed in the background; only its presence is certain at this point.
    assert ("dspex_consumer_pending_messages", lag) in samples
    assert ("dspex_consumer_ack_pending_messages", lag) in samples
    assert any(name == "process_resident_memory_bytes" for name, _ in samples)


async def test_streams_are_declared_idempotently(running: Running) -> None:
    await running.echo.runtime.ensure_streams()  # a second replica starting
    await running.echo.runtime.ensure_consumers()

    for name, patterns in STREAMS.items():
        info = await running.bus.js.stream_info(name)
        assert info.config.storage == StorageType.FILE
        assert info.config.subjects == list(patterns)
        assert info.config.duplicate_window == 600.0
    consumer = await running.bus.js.consumer_info("DSPEX_EXEC", "echo")
    assert consumer.config.ack_wait == 5.0
    assert consumer.config.max_deliver == 3
    assert consumer.config.filter_subject == subjects.EXEC_REQUESTED


@pytest.mark.unit
async def test_not_ready_until_subscribed() -> None:
    runtime = ServiceRuntime(ServiceSettings(service_name="probe", http_port=0))
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/readyz", "headers": []}
    await readyz(runtime)(scope, receive, send)
    assert sent[0]["status"] == 503  # started, maybe connected, not yet subscribed
