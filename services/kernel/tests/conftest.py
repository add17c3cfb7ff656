"""Fixtures of the kernel service tests: a real nats-server, the simulated LM over HTTP,
and the kernel service running in-process against both, plus a raw client."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import nats
import pytest
from nats.aio.msg import Msg
from opentelemetry.sdk.trace import TracerProvider

from dspex_contracts import ExecuteCompleted, ExecuteFailed, subjects
from dspex_kernel_service import create_app
from dspex_runtime.testing.fixtures import nats_server, nats_server_module  # noqa: F401
from dspex_runtime.testing.nats import NatsServer
from dspex_runtime.testing.serving import serve_started
from dspex_simlm.testing import SimLMProcess

# Test modules import the helpers beside this file (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).parent))

from kernel_helpers import Caller, Kernel, example_store, kernel_settings


@pytest.fixture(scope="session")
def sim_api_base() -> Iterator[str]:
    with SimLMProcess() as sim:
        yield sim.api_base


@pytest.fixture
async def tracer_provider() -> TracerProvider:
    return TracerProvider()


@pytest.fixture
async def kernel(
    nats_server: NatsServer,  # noqa: F811
    sim_api_base: str,
    tracer_provider: TracerProvider,
) -> AsyncIterator[Kernel]:
    service, app = create_app(
        kernel_settings(nats_server, sim_api_base),
        programs=example_store(),
        tracer_provider=tracer_provider,
    )
    task = await serve_started(service, app)
    nc = await nats.connect(nats_server.url)
    client = Caller(nc, nc.jetstream())

    async def on_completed(msg: Msg) -> None:
        client.completed.append(ExecuteCompleted.model_validate_json(msg.data))

    async def on_failed(msg: Msg) -> None:
        client.failed.append(ExecuteFailed.model_validate_json(msg.data))

    async def on_dead(msg: Msg) -> None:
        client.dead.append(json.loads(msg.data))

    await nc.subscribe(subjects.EXEC_COMPLETED, cb=on_completed)
    await nc.subscribe(subjects.EXEC_FAILED, cb=on_failed)
    await nc.subscribe(subjects.DEAD_LETTER, cb=on_dead)
    try:
        yield Kernel(nats_server.url, f"http://127.0.0.1:{service.http_port}", client)
    finally:
        await nc.close()
        assert service.http_server is not None
        service.http_server.should_exit = True
        await asyncio.wait_for(task, 30)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
