"""Composition root of the registry service: settings → runtime, SQL store (migrated at
start when configured), the durable consumers of the events it records, and its reads over
request/reply. No work happens at import time; the database opens in the app's lifespan."""

from __future__ import annotations

import logging

from faststream.asgi import AsgiFastStream
from opentelemetry.sdk.trace import TracerProvider

from dspex_contracts import (
    CandidateScored,
    OptimizeRequested,
    ProgramRegistered,
    RunCompleted,
    RunProgress,
)
from dspex_runtime.service import Delivery, ServiceRuntime

from . import handlers
from .adapters.db import SqlRegistryStore
from .adapters.engine import ensure_schema, make_engine
from .adapters.migrate import require_current, upgrade
from .adapters.rpc import serve_queries
from .domain import RegistryStore
from .explorer.live import RunChanges, decode_notice
from .explorer.web import Explorer, create_explorer
from .settings import RegistrySettings

_log = logging.getLogger(__name__)


async def open_sql_store(settings: RegistrySettings) -> SqlRegistryStore:
    """The configured database, upgraded to the latest schema when ``migrate_at_start``,
    else checked to be at it (so that a forgotten migration fails the start, not a write)."""
    schema = settings.database_schema
    if settings.migrate_at_start:
        await ensure_schema(settings.database_url, schema)
    engine = make_engine(settings.database_url, schema=schema)
    try:
        if settings.migrate_at_start:
            await upgrade(engine, schema=schema)
        else:
            await require_current(engine)
    except BaseException:
        await engine.dispose()
        raise
    return SqlRegistryStore(engine)


def create_app(
    settings: RegistrySettings | None = None,
    *,
    store: RegistryStore | None = None,
    tracer_provider: TracerProvider | None = None,
) -> tuple[ServiceRuntime, AsgiFastStream]:
    """Build the registry service. ``store`` replaces the configured database (tests inject
    the in-memory one); a store given here is not closed by the service."""
    settings = settings or RegistrySettings()
    service = ServiceRuntime(settings, tracer_provider=tracer_provider)
    opened: dict[str, RegistryStore] = {}

    def current() -> RegistryStore:
        return store if store is not None else opened["store"]

    async def open_store() -> None:
        if store is None:
            opened["store"] = await open_sql_store(settings)

    async def close_store() -> None:
        own = opened.pop("store", None)
        if own is not None:
            await own.close()

    durable = settings.durable
    changes = RunChanges()

    async def changed(run_id: str) -> None:
        # After the change is committed: pages woken by it read the new data.
        if settings.ui_enabled:
            await service.notify(changes.subject, run_id.encode())

    @service.consumer(ProgramRegistered, durable=f"{durable}-programs")
    async def on_registered(event: ProgramRegistered, delivery: Delivery) -> None:
        await service.publish(await handlers.program_registered(event, current()))

    # Each run event is announced once handled, also when handling failed after a write
    # (a completion recorded, then its program version not registrable): pages re-read.

    @service.consumer(OptimizeRequested, durable=f"{durable}-requests")
    async def on_requested(event: OptimizeRequested, delivery: Delivery) -> None:
        try:
            await handlers.optimize_requested(event, current())
        finally:
            await changed(event.payload.run_id)

    @service.consumer(RunProgress, durable=f"{durable}-progress")
    async def on_progress(event: RunProgress, delivery: Delivery) -> None:
        try:
            await handlers.run_progress(event, current())
        finally:
            await changed(event.payload.run_id)

    @service.consumer(CandidateScored, durable=f"{durable}-candidates")
    async def on_scored(event: CandidateScored, delivery: Delivery) -> None:
        try:
            await handlers.candidate_scored(event, current())
        finally:
            await changed(event.payload.run_id)

    @service.consumer(RunCompleted, durable=f"{durable}-completed")
    async def on_completed(event: RunCompleted, delivery: Delivery) -> None:
        try:
            updated = await handlers.run_completed(event, current())
            if updated is not None:
                await service.publish(updated)
        finally:
            await changed(event.payload.run_id)

    serve_queries(service, current, queue=durable)
    web = None
    if settings.ui_enabled:

        @service.notice_listener(changes.subject)
        def on_changed(body: bytes) -> None:
            run_id = decode_notice(body)
            if run_id is not None:
                changes.heard(run_id)

        web = create_explorer(
            Explorer(
                store=current,
                publish=service.publish,
                changes=changes,
                token=settings.ui_token,
                stopping=lambda: (
                    service.stopping
                    or (service.http_server is not None and service.http_server.should_exit)
                ),
            )
        )
    return service, service.asgi_app(
        on_startup=[open_store], on_shutdown=[close_store], fallback=web
    )
