"""ServiceRuntime: the edge every DSPEx service shares. A FastStream NATS broker (auth,
reconnects, Prometheus and OpenTelemetry middlewares), durable pull consumers and request/reply
responders whose outcomes map to acknowledgements in one place, JetStream publishing with
de-duplication, dead letters, and the HTTP app with health, readiness and metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import uvicorn
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream
from faststream.asgi.types import ASGIApp
from faststream.nats import ConsumerConfig, JStream, NatsMessage, PullSub
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import DeliverPolicy
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from dspex_contracts import Envelope
from dspex_contracts.subjects import stream_for

from . import asgi
from .broker import build_broker, document_entry, raw_body
from .deadletters import MaxDeliveries, dead_letter_event, max_deliveries_subject
from .handling import Delivery, Handler, MessageHandling, ReplyHandler
from .lag import ConsumerLag
from .metrics import RuntimeMetrics, new_registry
from .settings import ServiceSettings
from .streams import ensure_streams
from .telemetry import configure_tracing

__all__ = ["Delivery", "Handler", "ReplyHandler", "ServiceRuntime"]

_log = logging.getLogger(__name__)

E = TypeVar("E", bound=Envelope[Any])

# Longest a pull request waits for messages before asking again; short enough that a
# stopping subscriber is not held up, long enough not to spin.
_FETCH_TIMEOUT_S = 2.0


class ServiceRuntime:
    """One replica's connection to the bus. Register handlers with :meth:`consumer` and
    :meth:`responder`, then serve with :meth:`asgi_app` (or :meth:`run`)."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        registry: CollectorRegistry | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else new_registry()
        self.tracer_provider = tracer_provider or configure_tracing(settings.service_name)
        self.metrics = RuntimeMetrics(self.registry, settings.service_name)
        self._consumers: list[tuple[str, ConsumerConfig]] = []
        self.broker = build_broker(
            settings,
            registry=self.registry,
            tracer_provider=self.tracer_provider,
            disconnected_cb=self._disconnected,
        )
        self.lag = ConsumerLag(
            self.registry,
            lambda: self.broker.config.connection_state.stream,
            interval_s=settings.consumer_lag_interval_s,
        )
        self.handling = MessageHandling(self)
        self.stopping = False
        self.subscribed = asyncio.Event()  # set once the server holds our subscriptions
        self.http_port: int | None = None  # the bound port, once serving
        self.http_server: uvicorn.Server | None = None

    async def _disconnected(self) -> None:
        if self.stopping:
            _log.info("disconnected from NATS")
        else:
            _log.warning("disconnected from NATS; reconnecting")

    def mark_stopping(self) -> None:
        """Called as shutdown begins: a disconnect from now on is expected."""
        self.stopping = True

    # -- consuming ---------------------------------------------------------------------

    def consumer(
        self,
        model: type[E],
        *,
        durable: str,
        subject: str | None = None,
        max_workers: int | None = None,
    ) -> Callable[[Handler[E]], Handler[E]]:
        """Register ``handler(event, delivery)`` on a durable pull consumer of ``subject``
        (default ``model.SUBJECT``) that all replicas share. Returning acks the message;
        raising :class:`~dspex_runtime.errors.DeadLetter`, :class:`~dspex_runtime.errors.Retry`
        or anything else is mapped by :func:`dspex_runtime.errors.decide`."""
        subject = subject or model.SUBJECT
        stream = stream_for(subject)
        workers = max_workers or self.settings.concurrency
        config = ConsumerConfig(
            durable_name=durable,
            description=f"{self.settings.service_name}: {model.__name__} on {subject}",
            filter_subject=subject,
            ack_policy=JsAckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.settings.ack_wait_s,
            max_deliver=self.settings.max_deliver,
        )

        def register(handler: Handler[E]) -> Handler[E]:
            async def entry(body: bytes, msg: NatsMessage) -> None:
                await self.handling.consume(model, handler, msg, subject=subject)

            document_entry(entry, model, returns=None)
            self.broker.subscriber(
                subject,
                stream=JStream(stream, declare=False),
                durable=durable,
                config=config,
                pull_sub=PullSub(batch_size=workers, timeout=_FETCH_TIMEOUT_S),
                max_workers=workers,
                ack_policy=AckPolicy.MANUAL,
                decoder=raw_body,
                title=f"{subject}:{durable}",
            )(entry)
            self._consumers.append((stream, config))
            self.lag.watch(stream, durable)
            self._watch_max_deliveries(stream, durable)
            return handler

        return register

    def _watch_max_deliveries(self, stream: str, durable: str) -> None:
        async def on_max_deliveries(msg: NatsMessage) -> None:
            await self.handling.max_deliveries(MaxDeliveries.parse(msg.body))

        # One replica of the queue group handles each advisory; the dead letter's id is
        # derived from the stream sequence, so even a second one would be stored once.
        self.broker.subscriber(
            max_deliveries_subject(stream, durable),
            queue=f"{durable}-max-deliveries",
            include_in_schema=False,
        )(on_max_deliveries)

    def responder(
        self, model: type[E], *, subject: str, queue: str
    ) -> Callable[[ReplyHandler[E]], ReplyHandler[E]]:
        """Register ``handler(event) -> Envelope`` for core-NATS request/reply in a queue
        group: the returned envelope is the reply; a request that cannot be decoded, or a
        handler that fails, gets a DeadLettered envelope as its reply."""

        def register(handler: ReplyHandler[E]) -> ReplyHandler[E]:
            async def entry(body: bytes, msg: NatsMessage) -> bytes:
                return await self.handling.reply(model, handler, msg, subject=subject)

            document_entry(entry, model, returns=bytes)
            self.broker.subscriber(
                subject, queue=queue, decoder=raw_body, title=f"{subject}:{queue}"
            )(entry)
            return handler

        return register

    def notice_listener(
        self, subject: str
    ) -> Callable[[Callable[[bytes], Any]], Callable[[bytes], Any]]:
        """Register ``listener(body)`` for a core-NATS notice: every replica hears every
        notice (no queue group), nothing is stored or acknowledged, and a listener that
        fails only loses that notice."""

        def register(listener: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
            async def entry(body: bytes, msg: NatsMessage) -> None:
                try:
                    listener(body)
                except Exception:
                    _log.exception("notice listener on %s failed", subject)

            self.broker.subscriber(subject, decoder=raw_body, title=f"{subject}:notice")(entry)
            return listener

        return register

    async def notify(self, subject: str, body: bytes) -> None:
        """Publish a core-NATS notice (not stored). Best effort: a notice that cannot be
        sent is logged and dropped, never an error of the handler that sent it."""
        try:
            await self.broker.publish(body, subject)
        except Exception as e:
            _log.warning("notice on %s not sent: %s", subject, e)

    # -- publishing --------------------------------------------------------------------

    async def publish(self, event: Envelope[Any], *, headers: dict[str, str] | None = None) -> None:
        """Store ``event`` on its subject's stream; ``Nats-Msg-Id`` is the event id, so a
        second publish of the same event within the duplicate window is a no-op. Raises
        when the stream does not confirm."""
        subject = event.SUBJECT
        if not subject:
            raise ValueError(f"{type(event).__name__} has no SUBJECT")
        await self.broker.publish(
            event.model_dump_json().encode(),
            subject,
            headers={
                **(headers or {}),
                "content-type": "application/json",
                "Nats-Msg-Id": event.id,
            },
            correlation_id=event.correlation_id or event.id,
            stream=stream_for(subject),
            timeout=self.settings.publish_timeout_s,
        )

    async def dead_letter(
        self,
        *,
        subject: str,
        reason: str,
        message: str,
        raw: bytes,
        original_id: str | None = None,
        correlation_id: str | None = None,
        consumer: str | None = None,
        stream: str | None = None,
        stream_seq: int | None = None,
        deliveries: int | None = None,
    ) -> None:
        """Publish a DeadLettered event for ``raw`` and count it."""
        event = dead_letter_event(
            service=self.settings.service_name,
            subject=subject,
            reason=reason,
            message=message,
            raw=raw,
            original_id=original_id,
            correlation_id=correlation_id,
            consumer=consumer,
            stream=stream,
            stream_seq=stream_seq,
            deliveries=deliveries,
        )
        await self.publish(event)
        self.metrics.dead_lettered(subject, reason)
        _log.warning(
            "dead-lettered a message from %s: %s (%s)",
            subject,
            reason,
            event.payload.message,
            extra={"reason": reason, "stream_seq": stream_seq, "deliveries": deliveries},
        )

    # -- lifecycle ---------------------------------------------------------------------

    async def ensure_streams(self) -> None:
        """Declare every DSPEx stream (idempotent); connects the broker if needed."""
        await self.broker.connect()
        await ensure_streams(self.broker.config.connection_state.stream, self.settings)

    async def ensure_consumers(self) -> None:
        """Create or update the durable consumers registered so far (idempotent), so that a
        changed ack_wait or max_deliver reaches consumers that already exist."""
        await self.broker.connect()
        js = self.broker.config.connection_state.stream
        for stream, config in self._consumers:
            await js.add_consumer(stream, config=config)

    async def prepare(self) -> None:
        """Connect, then declare streams and consumers: what the app does before it starts
        consuming."""
        await self.ensure_streams()
        await self.ensure_consumers()

    async def subscriptions_live(self) -> None:
        """Wait until the server has processed the subscriptions the broker just sent (a
        round trip on the connection), then mark the replica subscribed: ``/readyz`` says
        ready only from then on, so a request sent once it does finds its responder."""
        await self.broker.config.connection_state.connection.flush()
        self.subscribed.set()

    def asgi_app(
        self,
        *,
        on_startup: Sequence[Callable[[], Any]] = (),
        on_shutdown: Sequence[Callable[[], Any]] = (),
        fallback: ASGIApp | None = None,
    ) -> AsgiFastStream:
        """The service as an ASGI app: ``/healthz``, ``/readyz``, ``/metrics``, AsyncAPI at
        ``/docs``, and ``fallback`` (the service's own web app) for every other path.
        Start-up connects, declares streams and consumers, runs ``on_startup``,
        then starts consuming. Shutdown stops fetching, waits for in-flight handlers (up to
        ``graceful_timeout_s``), closes the connection, then runs ``on_shutdown``. The consumer
        lag gauges are refreshed in the background while the app runs."""
        return asgi.build_app(
            self, on_startup=on_startup, on_shutdown=on_shutdown, fallback=fallback
        )

    async def serve(self, app: AsgiFastStream | None = None) -> None:
        """Serve ``app`` (default: :meth:`asgi_app`) with uvicorn in the running event loop
        until SIGTERM/SIGINT or ``self.http_server.should_exit``."""
        await asgi.serve(self, app)

    def run(self, app: AsgiFastStream | None = None) -> None:
        """Configure logging from the settings and serve ``app`` (default: :meth:`asgi_app`)
        until SIGTERM/SIGINT: the process entry point of a service."""
        asgi.run(self, app)
