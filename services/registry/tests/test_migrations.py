"""Alembic migrations on SQLite and PostgreSQL: from an empty database to the tables the
store uses, down to nothing and up again; the command lines; and a service that refuses an
out-of-date database it may not migrate."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from registry_helpers import POSTGRES_URL, unique_schema
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from dspex_registry import RegistrySettings
from dspex_registry.adapters.engine import drop_schema, ensure_schema, make_engine
from dspex_registry.adapters.migrate import (
    SchemaOutOfDate,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from dspex_registry.adapters.tables import metadata
from dspex_registry.app import open_sql_store

pytestmark = pytest.mark.integration

REGISTRY = Path(__file__).resolve().parents[1]
TABLES = {"programs", "runs", "candidates", "datasets", "run_progress"}
FIRST_TABLES = TABLES - {"run_progress"}  # revision 0001


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[AsyncEngine, str | None]]:
    """An engine on an empty database, with the PostgreSQL schema it uses (if any)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        yield engine, None
        await engine.dispose()
        return
    if not POSTGRES_URL:
        pytest.skip("DSPEX_TEST_POSTGRES_URL is not set")
    schema = unique_schema()
    await ensure_schema(POSTGRES_URL, schema)
    engine = make_engine(POSTGRES_URL, schema=schema)
    try:
        yield engine, schema
    finally:
        await engine.dispose()
        await drop_schema(POSTGRES_URL, schema)


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        names: list[str] = await conn.run_sync(lambda c: inspect(c).get_table_names())
    return set(names) - {"alembic_version"}


async def schema_differences(engine: AsyncEngine) -> list[object]:
    def compare(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with engine.connect() as conn:
        return await conn.run_sync(compare)


async def test_upgrade_builds_what_the_store_uses_and_round_trips(
    empty_database: tuple[AsyncEngine, str | None],
) -> None:
    engine, schema = empty_database
    assert await table_names(engine) == set()
    assert await current_revision(engine) is None
    await upgrade(engine, schema=schema)
    assert await current_revision(engine) == head_revision()
    assert await table_names(engine) == TABLES
    assert await schema_differences(engine) == []
    await downgrade(engine, schema=schema, revision="base")
    assert await current_revision(engine) is None
    assert await table_names(engine) == set()
    await upgrade(engine, schema=schema)
    assert await table_names(engine) == TABLES
    assert await schema_differences(engine) == []


async def test_postgres_tables_live_in_their_own_schema() -> None:
    if not POSTGRES_URL:
        pytest.skip("DSPEX_TEST_POSTGRES_URL is not set")
    schema = unique_schema()
    settings = RegistrySettings(database_url=POSTGRES_URL, database_schema=schema)
    store = await open_sql_store(settings.model_copy(update={"auto_migrate": True}))
    try:
        async with store.engine.connect() as conn:
            found = await conn.run_sync(lambda c: set(inspect(c).get_table_names(schema=schema)))
        assert found >= TABLES
    finally:
        await store.close()
        await drop_schema(POSTGRES_URL, schema)


async def test_the_run_progress_revision_goes_down_and_up_keeping_the_rest(
    empty_database: tuple[AsyncEngine, str | None],
) -> None:
    engine, schema = empty_database
    await upgrade(engine, schema=schema, revision="0001")
    assert await current_revision(engine) == "0001"
    assert await table_names(engine) == FIRST_TABLES
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO datasets (id, count, created_at) VALUES ('d1', 3, :at)"),
            {"at": datetime(2026, 11, 1, tzinfo=UTC)},
        )
    await upgrade(engine, schema=schema)
    assert await current_revision(engine) == head_revision() == "0002"
    assert await table_names(engine) == TABLES
    assert await schema_differences(engine) == []
    await downgrade(engine, schema=schema, revision="0001")
    assert await current_revision(engine) == "0001"
    assert await table_names(engine) == FIRST_TABLES
    await upgrade(engine, schema=schema)
    assert await table_names(engine) == TABLES
    assert await schema_differences(engine) == []
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT id, count FROM datasets"))).all() == [("d1", 3)]


def run_cli(args: list[str], database_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DSPEX_DATABASE_URL": database_url}
    env.pop("DSPEX_DATABASE_SCHEMA", None)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


async def test_the_alembic_command_line_migrates_an_empty_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    alembic = Path(sys.executable).parent / "alembic"
    done = run_cli(
        [str(alembic), "-c", str(REGISTRY / "alembic.ini"), "upgrade", "head"], url, tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "Running upgrade  -> 0001" in done.stderr
    assert "Running upgrade 0001 -> 0002" in done.stderr
    engine = make_engine(url)
    try:
        assert await table_names(engine) == TABLES
    finally:
        await engine.dispose()


async def test_the_migrate_command_and_a_service_that_may_not_migrate(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'job.db'}"
    refusing = RegistrySettings(database_url=url, auto_migrate=False)
    assert not refusing.migrate_at_start
    with pytest.raises(SchemaOutOfDate, match="python -m dspex_registry migrate"):
        await open_sql_store(refusing)
    done = run_cli([sys.executable, "-m", "dspex_registry", "migrate"], url, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"at revision {head_revision()}" in done.stdout
    store = await open_sql_store(refusing)  # now at head: starts without migrating
    await store.close()
    assert RegistrySettings(database_url=url).migrate_at_start
    assert not RegistrySettings(database_url="postgresql://db/x").migrate_at_start
