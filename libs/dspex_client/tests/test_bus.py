"""The SDK's connection to NATS: it rides out a broker restart once connected, and a
stream that does not exist (no stack) is a clear error, not a hang."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from dspex_client import DSPExClient, NotConnected
from dspex_contracts import PauseRun, PauseRunPayload
from dspex_runtime.testing.nats import NatsServer

pytestmark = pytest.mark.integration


async def until(check: Callable[[], bool], what: str) -> None:
    for _ in range(200):  # reconnects are a second apart
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_the_client_rides_out_a_broker_restart() -> None:
    with NatsServer() as server:
        async with DSPExClient(server.url) as client:
            server.stop()
            await until(lambda: client.nc.is_reconnecting, "the client to notice")
            server.start()
            await until(lambda: client.nc.is_connected, "the client to reconnect")
            await client.nc.flush(timeout=5)
            assert client.nc.stats["reconnects"] == 1


async def test_publishing_without_the_stack_streams_is_a_clear_error() -> None:
    with NatsServer() as server:
        async with DSPExClient(server.url) as client:
            with pytest.raises(NotConnected, match="is the DSPEx stack running"):
                await client.publish_event(
                    PauseRun.SUBJECT,
                    PauseRun.create(PauseRunPayload(run_id="r-1")).model_dump(mode="json"),
                )
