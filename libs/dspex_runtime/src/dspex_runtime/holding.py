"""A durable pull consumer for long handlers: it takes a message only when one of the
replica's slots is free, and holds it — with ``in_progress()`` heartbeats — for as long as
the handler runs. FastStream's concurrent subscriber prefetches beyond its free workers; a
buffered message nobody heartbeats is redelivered to another replica after ``ack_wait``
and handled twice, so long work (runs, evaluations) goes through this consumer instead."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Generic, Protocol, TypeVar, cast

from faststream.nats import NatsMessage
from faststream.nats.parser import JsParser
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from dspex_contracts import Envelope
from dspex_contracts.subjects import stream_for

from .deadletters import MaxDeliveries, max_deliveries_subject
from .handling import Handler
from .service import ServiceRuntime

__all__ = ["HoldingConsumer", "heartbeats"]

_log = logging.getLogger(__name__)

_FETCH_TIMEOUT_S = 2.0
E = TypeVar("E", bound=Envelope)  # type: ignore[type-arg]


class HoldingConsumer(Generic[E]):
    """Runs ``handler`` on each ``model`` message, at most ``slots`` at once, through the
    runtime's one ack mapping. Stopping cancels the handlers in progress and hands their
    messages back (``nak``) so that another replica takes them at once instead of after
    ``ack_wait``. Call :meth:`start` once the broker is connected, :meth:`stop` at
    shutdown."""

    def __init__(
        self,
        service: ServiceRuntime,
        model: type[E],
        handler: Handler[E],
        *,
        durable: str,
        slots: int,
    ) -> None:
        self.service = service
        self.model = model
        self.handler = handler
        self.durable = durable
        self.subject = model.SUBJECT
        self.stream = stream_for(self.subject)
        settings = service.settings
        self.heartbeat_s = settings.ack_wait_s / 3
        self.config = ConsumerConfig(
            durable_name=durable,
            description=f"{settings.service_name}: {model.__name__}, held while handled",
            filter_subject=self.subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=settings.ack_wait_s,
            max_deliver=settings.max_deliver,
        )
        self._slots = asyncio.Semaphore(slots)
        self._runs: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._parser = JsParser(pattern=self.subject)
        self._watch_max_deliveries()
        service.lag.watch(self.stream, durable)

    def _watch_max_deliveries(self) -> None:
        # Registered with the broker before it starts, like the runtime's own consumers: a
        # message that kept failing is dead-lettered with the original.
        async def on_max_deliveries(msg: NatsMessage) -> None:
            await self.service.handling.max_deliveries(MaxDeliveries.parse(msg.body))

        self.service.broker.subscriber(
            max_deliveries_subject(self.stream, self.durable),
            queue=f"{self.durable}-max-deliveries",
            include_in_schema=False,
        )(on_max_deliveries)

    @property
    def running(self) -> int:
        return len(self._runs)

    async def start(self) -> None:
        js: JetStreamContext = self.service.broker.config.connection_state.stream
        await js.add_consumer(self.stream, config=self.config)
        subscription = await js.pull_subscribe_bind(durable=self.durable, stream=self.stream)
        self._subscription = subscription
        self._loop = asyncio.create_task(self._fetch_loop(subscription))

    async def _fetch_loop(self, subscription: JetStreamContext.PullSubscription) -> None:
        while True:
            await self._slots.acquire()
            try:
                messages = await subscription.fetch(1, timeout=_FETCH_TIMEOUT_S)
            except TimeoutError:
                messages = []
            except asyncio.CancelledError:
                self._slots.release()
                raise
            except Exception as e:  # disconnected: the client reconnects on its own
                _log.warning("fetching %s failed: %s", self.subject, e)
                messages = []
                await asyncio.sleep(_FETCH_TIMEOUT_S)
            if not messages:
                self._slots.release()
                continue
            task = asyncio.create_task(self._own(messages[0]))
            self._runs.add(task)
            task.add_done_callback(self._runs.discard)

    async def _own(self, raw: Msg) -> None:
        try:
            message = cast(NatsMessage, await self._parser.parse_message(raw))
            async with heartbeats(message, every_s=self.heartbeat_s):
                await self.service.handling.consume(
                    self.model, self.handler, message, subject=self.subject
                )
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await raw.nak()
            raise
        finally:
            self._slots.release()

    async def stop(self) -> None:
        """Stop taking messages, cancel the handlers in progress, hand their messages back."""
        tasks = [t for t in (self._loop, *self._runs) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop = None
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            # Gone before the connection drains: a late answer to an expired fetch left in
            # its queue would otherwise hold the drain until the graceful timeout.
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()


class _Holdable(Protocol):
    async def in_progress(self) -> None: ...


@contextlib.asynccontextmanager
async def heartbeats(message: _Holdable, *, every_s: float) -> AsyncIterator[None]:
    """Tell JetStream every ``every_s`` that ``message`` is still being worked on, for as
    long as the block runs; a failed beat is logged (the next may get through)."""

    async def beat() -> None:
        while True:
            try:
                await message.in_progress()
            except Exception as e:
                _log.warning("heartbeat failed: %s", e)
            await asyncio.sleep(every_s)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
