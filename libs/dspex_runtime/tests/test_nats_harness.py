"""The nats-server test harness: loopback port, monitoring, fsync-always JetStream, and a
restart on the same port that keeps the store."""

from __future__ import annotations

import aiohttp
import nats
import pytest

from dspex_runtime.testing.nats import NatsServer

pytestmark = pytest.mark.integration


async def test_restart_keeps_port_and_stored_messages() -> None:
    async with NatsServer(monitoring=True, extra={"max_payload": 2_097_152}) as server:
        url = server.url
        assert url.startswith("nats://127.0.0.1:")
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{server.monitoring_url}/varz") as resp,
        ):
            varz = await resp.json()
        assert varz["max_payload"] == 2_097_152
        assert varz["jetstream"]["config"]["sync_always"] is True

        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.add_stream(name="KEEP", subjects=["keep.>"])
        await js.publish("keep.one", b"1")
        await nc.close()

        server.stop()
        assert not server.running
        server.start()

        assert server.url == url
        nc = await nats.connect(url)
        info = await nc.jetstream().stream_info("KEEP")
        await nc.close()
        assert info.state.messages == 1
    assert not server.running
