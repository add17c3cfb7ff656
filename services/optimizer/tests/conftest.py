"""Fixtures of the optimizer tests: the optimizer service in-process on a real nats-server,
a fake evaluator replica beside it, and a client that watches runs."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from dspex_runtime import datasets
from dspex_runtime.testing.fixtures import nats_server, nats_server_module  # noqa: F401
from dspex_runtime.testing.nats import NatsServer

# Test modules import the helpers beside this file (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).parent))

from optimizer_helpers import BusEvaluator, Replica, RunWatcher, optimizer_settings, start_replica


@pytest.fixture
async def replica(nats_server: NatsServer) -> AsyncIterator[Replica]:  # noqa: F811
    # Every test has its own server: a dataset cached by an earlier one must not hide it.
    datasets.clear_cache()
    started = await start_replica(optimizer_settings(nats_server))
    yield started
    await started.stop()


@pytest.fixture
async def watcher(nats_server: NatsServer, replica: Replica) -> AsyncIterator[RunWatcher]:  # noqa: F811
    nc = await nats.connect(nats_server.url)
    yield await RunWatcher(nc, nc.jetstream()).start()
    await nc.close()


@pytest.fixture
async def evaluator(watcher: RunWatcher) -> AsyncIterator[BusEvaluator]:
    fake = BusEvaluator(watcher.nc, watcher.js)
    await fake.start()
    yield fake
    await fake.stop()
