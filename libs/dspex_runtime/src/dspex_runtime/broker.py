"""The FastStream NATS broker of a service: servers, authentication, reconnects, graceful
timeout, Prometheus and OpenTelemetry middlewares, and quiet per-message logging."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from faststream.message import StreamMessage
from faststream.nats import NatsBroker, NatsMessage, NatsNKey, NatsUserPassword
from faststream.nats.prometheus import NatsPrometheusMiddleware
from faststream.security import BaseSecurity
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from pydantic import SkipValidation

from dspex_contracts import Envelope

from .logs import FASTSTREAM_LOGGER
from .settings import ServiceSettings
from .telemetry import telemetry_middleware


def build_broker(
    settings: ServiceSettings,
    *,
    registry: CollectorRegistry,
    tracer_provider: TracerProvider,
    disconnected_cb: Callable[[], Awaitable[None]],
) -> NatsBroker:
    reconnect: dict[str, Any] = {
        # nats-py takes fractions of a second though FastStream annotates ints.
        "reconnect_time_wait": settings.nats_reconnect_wait_s,
        "connect_timeout": settings.nats_connect_timeout_s,
    }
    return NatsBroker(
        [url.strip() for url in settings.nats_url.split(",") if url.strip()],
        security=nats_security(settings),
        name=settings.service_name,
        allow_reconnect=True,
        max_reconnect_attempts=settings.nats_max_reconnect_attempts,
        graceful_timeout=settings.graceful_timeout_s,
        disconnected_cb=disconnected_cb,
        middlewares=[
            NatsPrometheusMiddleware(registry=registry, app_name=settings.service_name),
            telemetry_middleware(tracer_provider),
        ],
        logger=logging.getLogger(FASTSTREAM_LOGGER),
        description=f"DSPEx {settings.service_name} service",
        **reconnect,
    )


async def raw_body(msg: StreamMessage[Any]) -> bytes:
    # The runtime decodes (and dead-letters) itself; FastStream passes the bytes through.
    body: bytes = msg.body
    return body


def document_entry(entry: Callable[..., Any], model: type[Envelope[Any]], returns: Any) -> None:
    """Let the AsyncAPI document show the contract model as the payload of ``entry``, which
    actually receives raw bytes: SkipValidation keeps the schema but not the validation."""
    entry.__annotations__ = {
        "body": cast(Any, SkipValidation)[model],  # a type made at run time
        "msg": NatsMessage,
        "return": returns,
    }
    entry.__doc__ = model.__doc__


def nats_security(settings: ServiceSettings) -> BaseSecurity | None:
    """User/password or NKey authentication from the settings (not both)."""
    if settings.nats_user and settings.nats_nkey_seed_file:
        raise ValueError("set nats_user/nats_password or nats_nkey_seed_file, not both")
    if settings.nats_user:
        password = settings.nats_password.get_secret_value() if settings.nats_password else ""
        return NatsUserPassword(settings.nats_user, password)
    if settings.nats_nkey_seed_file:
        return NatsNKey(settings.nats_nkey_seed_file)
    return None
