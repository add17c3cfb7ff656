"""Consumer lag gauges against a real nats-server: the backlog of a durable consumer and
its unacknowledged messages, refreshed in the background."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from prometheus_client import CollectorRegistry

from dspex_runtime.lag import ConsumerLag
from dspex_runtime.testing.nats import NatsServer

pytestmark = pytest.mark.integration

STREAM, SUBJECT, DURABLE = "LAGTEST", "lag.test", "lag-worker"


@pytest.fixture
async def js(nats_server: NatsServer) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_server.url)
    context = nc.jetstream()
    await context.add_stream(StreamConfig(name=STREAM, subjects=[SUBJECT]))
    await context.add_consumer(
        STREAM, ConsumerConfig(durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT)
    )
    yield context
    await nc.close()


async def eventually(check: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_gauges_follow_the_backlog_and_unacknowledged_messages(
    js: JetStreamContext,
) -> None:
    registry = CollectorRegistry()
    lag = ConsumerLag(registry, lambda: js, interval_s=0.05)
    lag.watch(STREAM, DURABLE)
    lag.watch(STREAM, "not-created-yet")  # skipped until it exists
    for i in range(3):
        await js.publish(SUBJECT, str(i).encode())
    labels = {"stream": STREAM, "consumer": DURABLE}

    def pending() -> float | None:
        return registry.get_sample_value("dspex_consumer_pending_messages", labels)

    def ack_pending() -> float | None:
        return registry.get_sample_value("dspex_consumer_ack_pending_messages", labels)

    await lag.start()
    try:
        assert (pending(), ack_pending()) == (3, 0)  # set by start, before any scrape
        subscription = await js.pull_subscribe_bind(durable=DURABLE, stream=STREAM)
        taken = await subscription.fetch(2, timeout=5)
        await eventually(lambda: (pending(), ack_pending()) == (1, 2), "the gauges to move")
        for msg in taken:
            await msg.ack_sync()
        await eventually(lambda: ack_pending() == 0, "the acks to show")
    finally:
        await lag.stop()
    assert (
        registry.get_sample_value(
            "dspex_consumer_pending_messages", {"stream": STREAM, "consumer": "not-created-yet"}
        )
        is None
    )
