"""Fixtures of the registry tests: a store of each kind (in memory, SQLite, PostgreSQL when
DSPEX_TEST_POSTGRES_URL is set, in a schema of its own dropped at the end), a real
nats-server, and the registry service running in-process against it."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.msg import Msg
from sqlalchemy import text

from dspex_contracts import ProgramUpdated, subjects
from dspex_registry import create_app
from dspex_registry.adapters.db import SqlRegistryStore
from dspex_registry.adapters.engine import drop_schema, ensure_schema, make_engine
from dspex_registry.adapters.memory import InMemoryRegistryStore
from dspex_registry.adapters.migrate import upgrade
from dspex_registry.domain import RegistryStore
from dspex_runtime.registry_client import RegistryClient
from dspex_runtime.testing.fixtures import nats_server, nats_server_module  # noqa: F401
from dspex_runtime.testing.nats import NatsServer
from dspex_runtime.testing.serving import serve_started, stop_serving

# Test modules import the helpers beside this file (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).parent))

from registry_helpers import (
    POSTGRES_URL,
    Bus,
    registry_settings,
    sqlite_url,
    unique_schema,
)

TABLES = ("programs", "runs", "candidates", "datasets", "run_progress")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("registry") / "template.db"

    async def build() -> None:
        engine = make_engine(sqlite_url(path))
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(build())
    return path


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[tuple[str, str]]:
    """(url, schema): a migrated schema of this test session, dropped at its end."""
    if not POSTGRES_URL:
        pytest.skip("DSPEX_TEST_POSTGRES_URL is not set")
    schema = unique_schema()

    async def build() -> None:
        await ensure_schema(POSTGRES_URL, schema)
        engine = make_engine(POSTGRES_URL, schema=schema)
        await upgrade(engine, schema=schema)
        await engine.dispose()

    asyncio.run(build())
    try:
        yield POSTGRES_URL, schema
    finally:
        asyncio.run(drop_schema(POSTGRES_URL, schema))


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_kind(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Any]:
    """Which store to build, resolved outside the event loop (session set-up uses its own)."""
    kind: str = request.param
    if kind == "sqlite":
        copy = tmp_path / "registry.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), copy)
        return kind, copy
    if kind == "postgresql":
        return kind, request.getfixturevalue("postgres_schema")
    return kind, None


@pytest.fixture
async def store(store_kind: tuple[str, Any]) -> AsyncIterator[RegistryStore]:
    kind, where = store_kind
    if kind == "memory":
        yield InMemoryRegistryStore()
        return
    if kind == "sqlite":
        engine = make_engine(sqlite_url(where))
    else:
        url, schema = where
        engine = make_engine(url, schema=schema)
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {', '.join(TABLES)}"))
    sql = SqlRegistryStore(engine)
    try:
        yield sql
    finally:
        await sql.close()


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:  # noqa: F811
    nc = await nats.connect(nats_server.url)
    result = Bus(nc, nc.jetstream())

    async def on_updated(msg: Msg) -> None:
        result.updates.append(ProgramUpdated.model_validate_json(msg.data))

    async def on_dead(msg: Msg) -> None:
        result.dead.append(json.loads(msg.data))

    await nc.subscribe(subjects.PROGRAM_UPDATED, cb=on_updated)
    await nc.subscribe(subjects.DEAD_LETTER, cb=on_dead)
    try:
        yield result
    finally:
        await nc.close()


@pytest.fixture
async def registry(
    nats_server: NatsServer,  # noqa: F811
    bus: Bus,
    tmp_path: Path,
) -> AsyncIterator[RegistryClient]:
    """The registry service on SQLite (migrated at start), and a client of its reads."""
    service, app = create_app(registry_settings(nats_server, sqlite_url(tmp_path / "reg.db")))
    task = await serve_started(service, app)
    client = RegistryClient(bus.nc, timeout_s=10.0)
    await client.start()
    try:
        yield client
    finally:
        await client.close()
        await stop_serving(service, task)
