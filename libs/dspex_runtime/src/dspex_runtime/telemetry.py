"""OpenTelemetry for services: a tracer provider per service, FastStream's NATS tracing
middleware, and helpers that carry W3C trace context in NATS headers for publishers that do
not go through FastStream."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import AttributeValue

__all__ = [
    "configure_tracing",
    "continue_trace",
    "inject_trace_headers",
    "otlp_exporter_from_env",
    "start_span",
    "telemetry_middleware",
]

_log = logging.getLogger(__name__)

TRACER_NAME = "dspex"

# Tried in order when OTEL_EXPORTER_OTLP_ENDPOINT is set: OTLP over HTTP is a dependency;
# a deployment may install the gRPC exporter instead. Either reads the standard
# OTEL_EXPORTER_OTLP_* variables itself.
_OTLP_MODULES = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
)
_OTLP_ENV = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def configure_tracing(
    service_name: str,
    *,
    exporter: SpanExporter | None = None,
    synchronous: bool = False,
    set_global: bool = False,
) -> TracerProvider:
    """A tracer provider whose spans carry ``service.name``.

    Spans go to ``exporter`` if given, else to an OTLP exporter when an OTLP endpoint is
    configured in the environment and an exporter package is installed, else nowhere (spans
    are still created, so trace context still propagates across services). ``synchronous``
    exports each span as it ends (tests read an in-memory exporter right away); otherwise
    spans are batched off the hot path. ``set_global`` installs the provider for libraries
    that use the global one; OpenTelemetry allows that once per process, so tests leave it
    off and pass the provider explicitly."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    if exporter is None:
        exporter = otlp_exporter_from_env(os.environ)
    if exporter is not None:
        processor = SimpleSpanProcessor(exporter) if synchronous else BatchSpanProcessor(exporter)
        provider.add_span_processor(processor)
    if set_global:
        trace.set_tracer_provider(provider)
    return provider


def otlp_exporter_from_env(environ: Mapping[str, str]) -> SpanExporter | None:
    """An OTLP span exporter if the environment names an endpoint and an OTLP exporter
    package is importable; ``None`` (with a warning if an endpoint was set) otherwise."""
    if not any(environ.get(name) for name in _OTLP_ENV):
        return None
    for module_name in _OTLP_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        exporter: SpanExporter = module.OTLPSpanExporter()
        return exporter
    _log.warning(
        "an OTLP endpoint is configured but no OTLP exporter package is installed "
        "(opentelemetry-exporter-otlp-proto-http or -grpc); spans are not exported"
    )
    return None


def telemetry_middleware(tracer_provider: TracerProvider) -> NatsTelemetryMiddleware:
    """FastStream's NATS tracing middleware: it continues the trace found in a consumed
    message's ``traceparent`` header and injects one into every message it publishes."""
    return NatsTelemetryMiddleware(tracer_provider=tracer_provider)


def inject_trace_headers(headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``headers`` plus the current trace context (``traceparent``, and
    ``tracestate``/``baggage`` when set) in W3C form, for a raw nats-py publish."""
    carrier = dict(headers or {})
    propagate.inject(carrier)
    return carrier


@contextmanager
def start_span(
    name: str,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    **attrs: AttributeValue,
) -> Iterator[Span]:
    """Run the block inside a new current span (a child of the current one, if any), so
    that :func:`inject_trace_headers` inside it links the messages it publishes."""
    tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
    with tracer.start_as_current_span(name, kind=kind, attributes=attrs) as span:
        yield span


@contextmanager
def continue_trace(
    name: str,
    headers: Mapping[str, str],
    *,
    tracer_provider: trace.TracerProvider | None = None,
    kind: SpanKind = SpanKind.CONSUMER,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Iterator[Span]:
    """Run the block inside a new current span whose parent is the trace context carried
    by a consumed message's ``headers`` (a new trace if they carry none): for work that a
    message starts outside FastStream's subscribers, such as an optimization run."""
    tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
    parent = propagate.extract(dict(headers))
    with tracer.start_as_current_span(
        name, context=parent, kind=kind, attributes=attributes
    ) as span:
        yield span
