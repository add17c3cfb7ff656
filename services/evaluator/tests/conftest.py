"""Fixtures of the evaluator service tests: a real nats-server, the simulated LM over HTTP,
an evaluator replica running in-process against both, and an optimizer-like client."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest

from dspex_runtime import datasets
from dspex_runtime.testing.fixtures import nats_server  # noqa: F401
from dspex_runtime.testing.nats import NatsServer
from dspex_simlm.testing import SimLMProcess

# Test modules import the helpers beside this file (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).parent))

from evaluator_helpers import Optimizer, Replica, evaluator_settings, start_replica


@pytest.fixture(scope="session")
def sim_api_base() -> Iterator[str]:
    with SimLMProcess() as sim:
        yield sim.api_base


@pytest.fixture
async def evaluator(
    nats_server: NatsServer,  # noqa: F811
    sim_api_base: str,
) -> AsyncIterator[Replica]:
    # Every test has its own server: a dataset cached by an earlier one must not hide it.
    datasets.clear_cache()
    replica = await start_replica(evaluator_settings(nats_server, sim_api_base))
    yield replica
    await replica.stop()


@pytest.fixture
async def optimizer(
    nats_server: NatsServer,  # noqa: F811
    evaluator: Replica,  # declares the streams the optimizer reads
) -> AsyncIterator[Optimizer]:
    nc = await nats.connect(nats_server.url)
    yield await Optimizer(nc, nc.jetstream()).start()
    await nc.close()
