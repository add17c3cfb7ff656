"""The service's HTTP side: the ASGI app (health, readiness, Prometheus metrics, AsyncAPI docs)
around the broker's lifespan, and serving it with uvicorn under SIGTERM."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import math
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import uvicorn
from faststream.asgi import AsgiFastStream, AsgiResponse, get, make_ping_asgi
from faststream.asgi.types import ASGIApp, Scope
from faststream.specification import AsyncAPI
from prometheus_client import make_asgi_app

from .logs import configure_logging

if TYPE_CHECKING:
    from .service import ServiceRuntime

_log = logging.getLogger(__name__)


@get(include_in_schema=False)
async def healthz(scope: Scope) -> AsgiResponse:
    """Liveness: the process serves HTTP. NATS being away is a readiness matter, not a reason
    to restart the process."""
    return AsgiResponse(b"ok", 200)


def readyz(runtime: ServiceRuntime) -> ASGIApp:
    """Readiness: subscribed (start-up finished) and NATS answering a ping."""
    ping = make_ping_asgi(
        runtime.broker, timeout=runtime.settings.readiness_timeout_s, include_in_schema=False
    )

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if not runtime.subscribed.is_set():
            await AsgiResponse(b"starting", 503)(scope, receive, send)
            return
        await ping(scope, receive, send)

    return cast(ASGIApp, app)


class ServiceApp(AsgiFastStream):
    """FastStream's ASGI app, whose routes match exact paths, handing every other HTTP
    request to ``fallback`` (a service's own web app) instead of answering 404."""

    fallback: ASGIApp | None = None

    async def not_found(self, scope: Scope, receive: Any, send: Any) -> None:
        if self.fallback is not None and scope["type"] == "http":
            await self.fallback(scope, receive, send)
            return
        await super().not_found(scope, receive, send)


def build_app(
    runtime: ServiceRuntime,
    *,
    on_startup: Sequence[Callable[[], Any]] = (),
    on_shutdown: Sequence[Callable[[], Any]] = (),
    fallback: ASGIApp | None = None,
) -> AsgiFastStream:
    async def flush_spans() -> None:
        # Spans of the last messages would be lost with a batching exporter otherwise.
        runtime.tracer_provider.force_flush()

    app = ServiceApp(
        runtime.broker,
        asgi_routes=[
            ("/healthz", healthz),
            ("/readyz", readyz(runtime)),
            ("/metrics", cast(ASGIApp, make_asgi_app(runtime.registry))),
        ],
        logger=logging.getLogger("dspex_runtime.app"),
        # FastStream runs these before the broker starts its subscribers, in order.
        on_startup=[runtime.prepare, *on_startup, runtime.lag.start],
        # ...and this once they are subscribed, before the app reports itself started.
        after_startup=[runtime.subscriptions_live],
        on_shutdown=[runtime.mark_stopping, runtime.lag.stop],
        # ...and these after the broker stopped: in-flight handlers have finished.
        after_shutdown=[*on_shutdown, flush_spans],
        asyncapi_path="/docs",
        specification=AsyncAPI(
            runtime.broker,
            title=f"DSPEx {runtime.settings.service_name}",
            version=_version(),
            description=f"Messages the DSPEx {runtime.settings.service_name} service consumes "
            "and answers.",
        ),
    )
    app.fallback = fallback
    return app


def _version() -> str:
    try:
        return importlib.metadata.version("dspex-runtime")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


async def serve(runtime: ServiceRuntime, app: AsgiFastStream | None = None) -> None:
    """Serve ``app`` (default: ``runtime.asgi_app()``) until SIGTERM/SIGINT; on a signal,
    uvicorn stops taking requests and the lifespan drains the broker. With ``http_port`` 0 a
    free port is chosen and stored in ``runtime.http_port``."""
    settings = runtime.settings
    sock = _bind(settings.http_host, settings.http_port)
    runtime.http_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app if app is not None else runtime.asgi_app(),
        log_config=None,  # configure_logging already sends everything to stderr as JSON
        access_log=False,
        lifespan="on",
        log_level=settings.log_level.lower(),
        # Open streams (the run explorer's live pages) must not hold a stopping replica.
        timeout_graceful_shutdown=max(1, math.ceil(settings.graceful_timeout_s)),
    )
    server = uvicorn.Server(config)
    runtime.http_server = server
    _log.info(
        "serving HTTP on %s:%d",
        settings.http_host,
        runtime.http_port,
        extra={"http_port": runtime.http_port},
    )
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()


def run(runtime: ServiceRuntime, app: AsgiFastStream | None = None) -> None:
    """Configure logging from the settings, then :func:`serve` in a new event loop."""
    settings = runtime.settings
    configure_logging(settings.log_level, json=settings.log_json, service=settings.service_name)
    asyncio.run(serve(runtime, app))
