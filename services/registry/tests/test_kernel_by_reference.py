"""The kernel service serving programs by reference from the registry: both services
in-process on one nats-server, the simulated LM over HTTP. A new version registered while
the kernel runs is served as soon as ProgramUpdated reaches it."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml
from nats.aio.client import Client
from registry_helpers import (
    EXAMPLE,
    Bus,
    eventually,
    registered,
    registry_settings,
    sqlite_url,
)

from dspex_contracts import (
    ExecuteCompleted,
    ExecuteFailed,
    ExecuteRequested,
    ExecuteRequestedPayload,
    ProgramRef,
    ProgramSource,
    subjects,
)
from dspex_kernel_service import KernelSettings
from dspex_kernel_service import create_app as create_kernel
from dspex_registry import create_app as create_registry
from dspex_runtime.testing.nats import NatsServer
from dspex_runtime.testing.serving import serve_started, stop_serving
from dspex_simlm import PRICES
from dspex_simlm.testing import SimLMProcess

pytestmark = pytest.mark.integration

QUESTION = "Ann has 3 apples and buys 4 more. How many apples does she have?"


@pytest.fixture(scope="module")
def sim_api_base() -> Iterator[str]:
    with SimLMProcess() as sim:
        yield sim.api_base


@pytest.fixture
async def stack(
    nats_server: NatsServer, bus: Bus, sim_api_base: str, tmp_path: Path
) -> AsyncIterator[Bus]:
    """The registry and a kernel without a programs folder (so: backed by the registry)."""
    registry, registry_app = create_registry(
        registry_settings(nats_server, sqlite_url(tmp_path / "reg.db"))
    )
    kernel_settings = KernelSettings(
        nats_url=nats_server.url,
        http_port=0,
        lm_api_base=sim_api_base,
        lm_api_key="sk-test",
        lm_prices=PRICES,
        lm_cache="none",
        max_deliver=3,
        backoff_s=[0.1],
        log_level="WARNING",
    )
    assert kernel_settings.programs_dir is None
    kernel, kernel_app = create_kernel(kernel_settings)
    registry_task = await serve_started(registry, registry_app)
    kernel_task = await serve_started(kernel, kernel_app)
    try:
        yield bus
    finally:
        await stop_serving(kernel, kernel_task)
        await stop_serving(registry, registry_task)


async def call(nc: Client, name: str) -> ExecuteCompleted | ExecuteFailed:
    request = ExecuteRequested.create(
        ExecuteRequestedPayload(
            program=ProgramSource(ref=ProgramRef(name=name)), inputs={"question": QUESTION}
        )
    )
    reply = await nc.request(subjects.EXEC_CALL, request.model_dump_json().encode(), timeout=30)
    if b'"ExecuteFailed"' in reply.data:
        return ExecuteFailed.model_validate_json(reply.data)
    return ExecuteCompleted.model_validate_json(reply.data)


async def test_the_kernel_runs_the_latest_registered_version(stack: Bus) -> None:
    unknown = await call(stack.nc, "math_qa")
    assert isinstance(unknown, ExecuteFailed)
    assert unknown.payload.error.code == "unknown_program"

    spec = yaml.safe_load((EXAMPLE / "program.yaml").read_text())
    await stack.send(registered(spec))
    await stack.update("math_qa", 1)
    first = await call(stack.nc, "math_qa")
    assert isinstance(first, ExecuteCompleted), first
    assert first.payload.program == ProgramRef(name="math_qa", version=1)
    assert isinstance(first.payload.outputs["answer"], int)

    changed = copy.deepcopy(spec)
    changed["stages"][0]["module"] = "chain_of_thought"
    await stack.send(registered(changed))
    await stack.update("math_qa", 2)

    async def serves_version_2() -> bool:
        answer = await call(stack.nc, "math_qa")
        assert isinstance(answer, ExecuteCompleted), answer
        return answer.payload.program == ProgramRef(name="math_qa", version=2)

    # Well within the client's 60 s TTL: only the announcement can make the kernel move on.
    await eventually(serves_version_2, "the kernel to serve version 2", timeout_s=10)
    latest = await call(stack.nc, "math_qa")
    assert isinstance(latest, ExecuteCompleted)
    assert "reasoning" in latest.payload.outputs  # chain of thought: the new spec runs
