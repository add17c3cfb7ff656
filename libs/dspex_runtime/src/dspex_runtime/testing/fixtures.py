"""Pytest fixtures that start a real nats-server. Use them from any test package with
``from dspex_runtime.testing.fixtures import nats_server, nats_server_module`` in a conftest
(or ``pytest_plugins = ["dspex_runtime.testing.fixtures"]`` in the root conftest)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .nats import NatsServer


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    """A fresh nats-server with JetStream for one test."""
    with NatsServer() as server:
        yield server


@pytest.fixture(scope="module")
def nats_server_module() -> Iterator[NatsServer]:
    """One nats-server shared by the tests of a module (streams and consumers persist between
    tests: give each test its own durable names or subjects)."""
    with NatsServer() as server:
        yield server
