"""The SQLAlchemy async engine of the registry's database: the URL gets its async driver
(aiosqlite, asyncpg), SQLite gets WAL and a busy timeout, and a PostgreSQL schema is
selected through the connection's ``search_path``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def async_url(url: str | URL) -> URL:
    """``url`` with the async driver of its database when it names none (``postgresql://``,
    ``postgres://`` and ``sqlite://`` as people write them)."""
    parsed = make_url(url)
    if parsed.drivername == "postgres":
        parsed = parsed.set(drivername="postgresql")
    return parsed.set(drivername=_ASYNC_DRIVERS.get(parsed.drivername, parsed.drivername))


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str | URL, *, schema: str | None = None) -> AsyncEngine:
    """An engine for ``url``; ``schema`` (PostgreSQL only) holds the tables and must exist
    (:func:`ensure_schema`)."""
    parsed = async_url(url)
    if parsed.get_backend_name() == "sqlite":
        if schema:
            raise ValueError("a database schema applies to PostgreSQL only, not SQLite")
        kwargs: dict[str, Any] = {"connect_args": {"timeout": 30.0}}
        if parsed.database in (None, "", ":memory:"):
            # One shared connection, or every connection would see its own empty database.
            kwargs["poolclass"] = StaticPool
        engine = create_async_engine(parsed, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    connect_args: dict[str, Any] = {}
    if schema:
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(parsed, pool_pre_ping=True, connect_args=connect_args)


def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    # WAL lets readers go on while the registry writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


async def ensure_schema(url: str | URL, schema: str | None) -> None:
    """Create the PostgreSQL ``schema`` if it is missing (no-op without one)."""
    if not schema:
        return
    engine = make_engine(url)
    try:
        quoted = engine.dialect.identifier_preparer.quote_schema(schema)
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quoted}"))
    finally:
        await engine.dispose()


async def drop_schema(url: str | URL, schema: str) -> None:
    """Drop ``schema`` and everything in it (test clean-up)."""
    engine = make_engine(url)
    try:
        quoted = engine.dialect.identifier_preparer.quote_schema(schema)
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA IF EXISTS {quoted} CASCADE"))
    finally:
        await engine.dispose()
