"""Fixtures of the runtime tests: a real nats-server (the shared fixtures of
dspex_runtime.testing), the echo service running against it, and a raw client."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import nats
import pytest
from nats.aio.msg import Msg

from dspex_contracts import ExecuteCompleted, subjects
from dspex_runtime import ServiceRuntime
from dspex_runtime.testing.fixtures import nats_server, nats_server_module  # noqa: F401
from dspex_runtime.testing.nats import NatsServer
from dspex_runtime.testing.serving import serve_started, stop_serving

# Test modules import the helpers beside this file (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).parent))

from runtime_helpers import Bus, Echo, Running, echo_settings


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:  # noqa: F811
    nc = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    result = Bus(nc, nc.jetstream())

    async def on_completed(msg: Msg) -> None:
        result.completed.append(ExecuteCompleted.model_validate_json(msg.data))

    async def on_dead(msg: Msg) -> None:
        result.dead.append(json.loads(msg.data))

    await nc.subscribe(subjects.EXEC_COMPLETED, cb=on_completed)
    await nc.subscribe(subjects.DEAD_LETTER, cb=on_dead)
    yield result
    await nc.close()


@pytest.fixture
async def running(nats_server: NatsServer, bus: Bus) -> AsyncIterator[Running]:  # noqa: F811
    echo = Echo(ServiceRuntime(echo_settings(nats_server)))
    echo.register()
    task = await serve_started(echo.runtime)
    async with aiohttp.ClientSession() as http:
        yield Running(echo, bus, http, f"http://127.0.0.1:{echo.runtime.http_port}")
    await stop_serving(echo.runtime, task)
