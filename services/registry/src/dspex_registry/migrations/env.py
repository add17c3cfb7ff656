"""Alembic environment of the registry. It runs the migrations on the connection the service
hands over (``config.attributes["connection"]``), or else on an engine built from the URL
(``sqlalchemy.url`` of the configuration, else ``DSPEX_DATABASE_URL``) and schema
(``DSPEX_DATABASE_SCHEMA``), through aiosqlite or asyncpg."""

from __future__ import annotations

import asyncio
import logging.config

from alembic import context
from sqlalchemy.engine import Connection

from dspex_registry.adapters.engine import async_url, ensure_schema, make_engine
from dspex_registry.adapters.tables import metadata
from dspex_registry.settings import RegistrySettings

config = context.config


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters tables by copying them; later migrations need that.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def url_and_schema() -> tuple[str, str | None]:
    settings = RegistrySettings()
    url = config.get_main_option("sqlalchemy.url") or settings.database_url
    schema = config.attributes.get("schema", settings.database_schema)
    return url, schema


async def run_online() -> None:
    url, schema = url_and_schema()
    await ensure_schema(url, schema)
    engine = make_engine(url, schema=schema)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_on)
    finally:
        await engine.dispose()


def run_offline() -> None:
    """``alembic upgrade head --sql``: print the SQL instead of running it."""
    url, _ = url_and_schema()
    context.configure(
        url=async_url(url), target_metadata=metadata, literal_binds=True, compare_type=True
    )
    with context.begin_transaction():
        context.run_migrations()


given = config.attributes.get("connection")
if config.config_file_name and given is None:
    # The alembic command line: log what it does, as alembic.ini says.
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)
if context.is_offline_mode():
    run_offline()
elif given is not None:
    run_on(given)
else:
    asyncio.run(run_online())
