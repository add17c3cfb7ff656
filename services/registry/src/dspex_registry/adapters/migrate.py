"""Running the registry's Alembic migrations from Python: at service start, from
``python -m dspex_registry migrate``, and in tests (upgrade, downgrade, current revision)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ..settings import RegistrySettings
from .engine import ensure_schema, make_engine

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


class SchemaOutOfDate(RuntimeError):
    """The database is not at the migrations' head and the service may not upgrade it."""


def alembic_config(schema: str | None = None) -> Config:
    """A configuration without an ini file: the packaged scripts and the schema."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["schema"] = schema
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade(
    engine: AsyncEngine, *, schema: str | None = None, revision: str = "head"
) -> None:
    """Upgrade the database of ``engine`` (whose schema must exist) to ``revision``."""
    await _run(engine, schema, lambda config: command.upgrade(config, revision))


async def downgrade(engine: AsyncEngine, *, schema: str | None = None, revision: str) -> None:
    await _run(engine, schema, lambda config: command.downgrade(config, revision))


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(read)


async def require_current(engine: AsyncEngine) -> None:
    """Raise :class:`SchemaOutOfDate` unless the database is at the head revision."""
    current, head = await current_revision(engine), head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"the registry database is at revision {current or 'none'}, the service needs "
            f"{head}: run `python -m dspex_registry migrate` (or set DSPEX_AUTO_MIGRATE=true)"
        )


async def migrate(settings: RegistrySettings, revision: str = "head") -> str | None:
    """Create the schema if needed and upgrade to ``revision``; returns the new revision."""
    await ensure_schema(settings.database_url, settings.database_schema)
    engine = make_engine(settings.database_url, schema=settings.database_schema)
    try:
        await upgrade(engine, schema=settings.database_schema, revision=revision)
        return await current_revision(engine)
    finally:
        await engine.dispose()


async def _run(engine: AsyncEngine, schema: str | None, step: Callable[[Config], None]) -> None:
    config = alembic_config(schema)

    def on(connection: Connection) -> None:
        config.attributes["connection"] = connection
        step(config)

    async with engine.connect() as connection:
        await connection.run_sync(on)
        await connection.commit()
