"""Trace context across the bus: a span started by a publisher continues in the FastStream
consumer (traceparent in NATS headers), whether the publisher is raw nats-py or FastStream,
and through a handler that publishes onwards. Real nats-server, in-memory span exporter."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from dspex_runtime.telemetry import (
    configure_tracing,
    inject_trace_headers,
    otlp_exporter_from_env,
    start_span,
    telemetry_middleware,
)
from dspex_runtime.testing.fixtures import nats_server_module  # noqa: F401 - a fixture
from dspex_runtime.testing.nats import NatsServer

STREAM = JStream("TRACING", subjects=["tracing.>"])


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = configure_tracing("dspex-test", exporter=exporter, synchronous=True)
    yield provider
    provider.shutdown()


@pytest.fixture
async def broker(
    nats_server_module: NatsServer,  # noqa: F811 - the fixture imported above
    provider: TracerProvider,
) -> AsyncIterator[NatsBroker]:
    broker = NatsBroker(
        nats_server_module.url,
        middlewares=[telemetry_middleware(provider)],
        logger=None,
    )
    yield broker
    await broker.stop()


def add_recorder(broker: NatsBroker, subject: str, durable: str) -> asyncio.Queue[str]:
    """A JetStream pull subscriber that queues the bodies it receives."""
    received: asyncio.Queue[str] = asyncio.Queue()

    @broker.subscriber(subject, stream=STREAM, durable=durable, pull_sub=PullSub(timeout=0.2))
    async def record(body: str, msg: NatsMessage) -> None:
        await received.put(body)

    return received


async def processed_span(exporter: InMemorySpanExporter, subject: str) -> ReadableSpan:
    # The middleware ends the consumer span after the handler returns: wait for it.
    async with asyncio.timeout(10):
        while True:
            for span in exporter.get_finished_spans():
                if span.name == f"{subject} process" and span.kind is SpanKind.CONSUMER:
                    return span
            await asyncio.sleep(0.02)


def span_by_id(exporter: InMemorySpanExporter, span_id: int) -> ReadableSpan:
    return next(s for s in exporter.get_finished_spans() if s.context.span_id == span_id)


@pytest.mark.integration
async def test_a_raw_nats_py_publisher_starts_the_consumers_trace(
    broker: NatsBroker,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    nats_server_module: NatsServer,  # noqa: F811
) -> None:
    subject = "tracing.raw"
    received = add_recorder(broker, subject, "raw")
    await broker.start()
    client = await nats.connect(nats_server_module.url)
    try:
        with start_span("client send", tracer_provider=provider, kind=SpanKind.PRODUCER) as sent:
            headers = inject_trace_headers({"Nats-Msg-Id": "raw-1"})
            await client.jetstream().publish(subject, b"hello", headers=headers)
    finally:
        await client.close()

    async with asyncio.timeout(10):
        assert await received.get() == "hello"
    consumed = await processed_span(exporter, subject)
    assert headers["traceparent"].split("-")[1] == f"{sent.get_span_context().trace_id:032x}"
    assert consumed.context.trace_id == sent.get_span_context().trace_id
    assert consumed.parent is not None
    assert consumed.parent.span_id == sent.get_span_context().span_id
    assert consumed.resource.attributes["service.name"] == "dspex-test"


@pytest.mark.integration
async def test_a_faststream_publisher_continues_the_current_trace(
    broker: NatsBroker,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    subject = "tracing.faststream"
    received = add_recorder(broker, subject, "faststream")
    await broker.start()
    with start_span("client request", tracer_provider=provider) as outer:
        await broker.publish("hi", subject, stream=STREAM.name)

    async with asyncio.timeout(10):
        assert await received.get() == "hi"
    consumed = await processed_span(exporter, subject)
    trace_id = outer.get_span_context().trace_id
    assert consumed.context.trace_id == trace_id
    # FastStream parents the message on a "create" span that is a child of the caller's.
    assert consumed.parent is not None
    create = span_by_id(exporter, consumed.parent.span_id)
    assert create.parent is not None
    assert create.parent.span_id == outer.get_span_context().span_id


@pytest.mark.integration
async def test_a_handler_that_publishes_onwards_keeps_the_trace(
    broker: NatsBroker,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    nats_server_module: NatsServer,  # noqa: F811
) -> None:
    # The kernel service's shape: consume a request, publish the result.
    request, result = "tracing.request", "tracing.result"

    @broker.subscriber(request, stream=STREAM, durable="relay", pull_sub=PullSub(timeout=0.2))
    async def relay(body: str, msg: NatsMessage) -> None:
        await broker.publish(body.upper(), result, stream=STREAM.name)

    received = add_recorder(broker, result, "relayed")
    await broker.start()
    client = await nats.connect(nats_server_module.url)
    try:
        with start_span("client send", tracer_provider=provider) as sent:
            await client.jetstream().publish(request, b"ping", headers=inject_trace_headers())
    finally:
        await client.close()

    async with asyncio.timeout(10):
        assert await received.get() == "PING"
    first = await processed_span(exporter, request)
    second = await processed_span(exporter, result)
    trace_id = sent.get_span_context().trace_id
    assert first.context.trace_id == second.context.trace_id == trace_id
    # The second hop descends from the first handler's span, not from a new root.
    assert second.parent is not None
    ancestor = span_by_id(exporter, second.parent.span_id)
    while ancestor.context.span_id != first.context.span_id:
        assert ancestor.parent is not None, "the relayed message lost its parent"
        ancestor = span_by_id(exporter, ancestor.parent.span_id)


@pytest.mark.unit
def test_outside_a_span_nothing_is_injected() -> None:
    assert inject_trace_headers({"Nats-Msg-Id": "x"}) == {"Nats-Msg-Id": "x"}


@pytest.mark.unit
def test_without_an_otlp_endpoint_there_is_no_exporter() -> None:
    assert otlp_exporter_from_env({}) is None


@pytest.mark.integration
def test_spans_reach_an_otlp_endpoint_over_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """With OTEL_EXPORTER_OTLP_ENDPOINT set, a service's spans are POSTed as OTLP/protobuf
    to ``<endpoint>/v1/traces`` (a local receiver stands in for a collector)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    received: list[tuple[str, str, bytes]] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        provider = configure_tracing("otlp-test", synchronous=True)
        with start_span("exported span", tracer_provider=provider, answer=42):
            pass
        provider.shutdown()
    finally:
        server.shutdown()
    assert received, "no OTLP request reached the endpoint"
    path, content_type, body = received[0]
    assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
    request = ExportTraceServiceRequest.FromString(body)
    spans = [s for r in request.resource_spans for ss in r.scope_spans for s in ss.spans]
    assert [s.name for s in spans] == ["exported span"]
    service = {a.key: a.value.string_value for a in request.resource_spans[0].resource.attributes}
    assert service["service.name"] == "otlp-test"
