"""The consumer edge against a real nats-server: acks, de-duplication, dead letters with
their reasons, retries with back-off, and max-deliveries."""

from __future__ import annotations

import json

import pytest
from runtime_helpers import (
    Bus,
    Echo,
    Gate,
    Running,
    echo_settings,
    request,
)

from dspex_contracts import DeadLettered
from dspex_runtime import ServiceRuntime
from dspex_runtime.testing.nats import NatsServer
from dspex_runtime.testing.serving import serve_started, stop_serving

pytestmark = pytest.mark.integration


async def test_valid_message_is_handled_and_acked_once(running: Running) -> None:
    event = request("ok", question="6*7")
    await running.bus.send(event)

    done = await running.bus.wait_completed(event.id)
    info = await running.bus.settled()

    assert done.payload.outputs == {"mode": "ok", "question": "6*7"}
    assert done.causation_id == event.id
    assert done.correlation_id == "corr-1"
    assert running.echo.attempts[event.id] == 1
    assert running.echo.deliveries[event.id] == [1]
    assert info.num_redelivered == 0
    assert info.ack_floor.stream_seq == info.delivered.stream_seq == 1


async def test_same_msg_id_twice_is_handled_once(running: Running) -> None:
    event = request("ok")
    body = event.model_dump_json().encode()
    first = await running.bus.publish(body, msg_id=event.id)
    second = await running.bus.publish(body, msg_id=event.id)
    sentinel = request("ok")
    await running.bus.send(sentinel)

    await running.bus.wait_completed(sentinel.id)
    await running.bus.settled()

    assert not first.duplicate
    assert second.duplicate
    assert running.echo.attempts[event.id] == 1
    assert [c.payload.request_id for c in running.bus.completed].count(event.id) == 1


def _valid_dict() -> dict[str, object]:
    return json.loads(request("ok").model_dump_json())


def _wrong_version() -> bytes:
    data = _valid_dict()
    data["version"] = 2
    return json.dumps(data).encode()


def _missing_field() -> bytes:
    data = _valid_dict()
    del data["payload"]["inputs"]  # type: ignore[attr-defined]
    return json.dumps(data).encode()


def _oversized() -> bytes:
    data = _valid_dict()
    data["payload"]["inputs"]["blob"] = "x" * 8000  # type: ignore[index]
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"type": "ExecuteRequested", "version": 1, ', "invalid_message"),
        (b"\xff\xfe not even text", "invalid_message"),
        (_wrong_version(), "unsupported_version"),
        (_missing_field(), "invalid_contract"),
        (_oversized(), "too_large"),
        (request("dead").model_dump_json().encode(), "unknown_program"),
    ],
    ids=["malformed-json", "not-utf8", "wrong-version", "missing-field", "oversized", "unknown"],
)
async def test_bad_messages_are_dead_lettered_with_their_reason(
    running: Running, body: bytes, reason: str
) -> None:
    await running.bus.publish(body, msg_id="bad-1")
    [dead] = await running.bus.wait_dead(1)

    letter = DeadLettered.model_validate(dead)
    assert letter.payload.reason == reason
    assert letter.payload.subject == "dspex.exec.requested.v1"
    assert letter.payload.service == "echo"
    assert letter.payload.original_id == "bad-1"
    assert letter.payload.stream == "DSPEX_EXEC"
    assert letter.payload.stream_seq == 1
    assert letter.payload.original_size == len(body)
    assert letter.payload.original.encode()[:20] == body[:20].decode(errors="replace").encode()

    # The service is still up and the bad message is not redelivered.
    after = request("ok")
    await running.bus.send(after)
    await running.bus.wait_completed(after.id)
    info = await running.bus.settled()
    assert info.num_redelivered == 0
    assert len(running.bus.dead) == 1
    stored = await running.bus.js.stream_info("DSPEX_DLQ")
    assert stored.state.messages == 1


async def test_transient_failures_are_retried_until_success(running: Running) -> None:
    event = request("flaky", fail=2)
    await running.bus.send(event)

    await running.bus.wait_completed(event.id)
    await running.bus.settled()

    assert running.echo.attempts[event.id] == 3
    assert running.echo.deliveries[event.id] == [1, 2, 3]
    assert running.bus.dead == []


async def test_always_failing_message_is_dead_lettered_after_max_deliver(
    running: Running,
) -> None:
    event = request("always")
    await running.bus.send(event)

    [dead] = await running.bus.wait_dead(1)
    letter = DeadLettered.model_validate(dead)

    assert letter.payload.reason == "max_deliveries"
    assert letter.payload.deliveries == 3
    assert letter.payload.consumer == "echo"
    assert letter.payload.original_id == event.id
    assert letter.correlation_id == "corr-1"
    assert letter.causation_id == event.id
    assert json.loads(letter.payload.original)["id"] == event.id
    assert running.echo.attempts[event.id] == 3
    # Dead-lettering twice (e.g. by two replicas) would be stored once: same derived id.
    assert letter.id == f"dlq-DSPEX_EXEC-echo-{letter.payload.stream_seq}"

    after = request("ok")
    await running.bus.send(after)
    await running.bus.wait_completed(after.id)
    assert running.echo.attempts[event.id] == 3


async def test_a_replica_handles_up_to_its_concurrency_at_once(running: Running) -> None:
    events = [request("gather", n=4) for _ in range(4)]  # the echo service's concurrency
    for event in events:
        await running.bus.send(event)

    for event in events:
        await running.bus.wait_completed(event.id)
    assert running.echo.gate.peak == 4


async def test_replicas_share_one_durable_consumer(nats_server: NatsServer, bus: Bus) -> None:
    gate = Gate()
    replicas = [
        Echo(ServiceRuntime(echo_settings(nats_server, concurrency=1)), gate=gate) for _ in range(2)
    ]
    tasks = []
    for replica in replicas:
        replica.register()
        tasks.append(await serve_started(replica.runtime))
    try:
        # One message each, at once: only possible when both replicas pull from the consumer.
        pair = [request("gather", n=2) for _ in range(2)]
        for event in pair:
            await bus.send(event)
        for event in pair:
            await bus.wait_completed(event.id)
        batch = [request("ok") for _ in range(20)]
        for event in batch:
            await bus.send(event)
        for event in batch:
            await bus.wait_completed(event.id)
        await bus.settled()
    finally:
        for replica, task in zip(replicas, tasks, strict=True):
            await stop_serving(replica.runtime, task)

    assert gate.peak == 2
    handled = replicas[0].attempts + replicas[1].attempts
    assert all(handled[event.id] == 1 for event in [*pair, *batch])
    assert all(replica.attempts for replica in replicas)
