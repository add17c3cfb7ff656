"""Owning runs: a durable pull consumer of OptimizeRequested that takes a message only when
one of the replica's ``max_runs`` slots is free, and holds it — with ``in_progress()``
heartbeats — for as long as the run lasts. A buffered message nobody heartbeats would be
redelivered to another replica while this one still meant to run it, so FastStream's
prefetching subscriber is not used here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import cast

from faststream.nats import NatsMessage
from faststream.nats.parser import JsParser
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from dspex_contracts import OptimizeRequested
from dspex_contracts.subjects import stream_for
from dspex_runtime import Handler, ServiceRuntime
from dspex_runtime.deadletters import MaxDeliveries, max_deliveries_subject

__all__ = ["RunConsumer"]

_log = logging.getLogger(__name__)

_FETCH_TIMEOUT_S = 2.0
_SUBJECT = OptimizeRequested.SUBJECT


class RunConsumer:
    """Runs ``handler`` on each OptimizeRequested, at most ``max_runs`` at once. Stopping
    cancels the runs in progress and hands their messages back (``nak``) so that another
    replica replays them at once instead of after ``ack_wait``."""

    def __init__(
        self,
        service: ServiceRuntime,
        handler: Handler[OptimizeRequested],
        *,
        durable: str,
        max_runs: int,
    ) -> None:
        self.service = service
        self.handler = handler
        self.durable = durable
        self.stream = stream_for(_SUBJECT)
        settings = service.settings
        self.heartbeat_s = settings.ack_wait_s / 3
        self.config = ConsumerConfig(
            durable_name=durable,
            description=f"{settings.service_name}: runs owned by the replica holding them",
            filter_subject=_SUBJECT,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=settings.ack_wait_s,
            max_deliver=settings.max_deliver,
        )
        self._slots = asyncio.Semaphore(max_runs)
        self._runs: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._parser = JsParser(pattern=_SUBJECT)
        self._watch_max_deliveries()

    def _watch_max_deliveries(self) -> None:
        # Registered with the broker before it starts, like the runtime's own consumers: a
        # run that kept failing is dead-lettered with the original message.
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
                _log.warning("fetching runs failed: %s", e)
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
            async with self._heartbeats(message):
                await self.service.handling.consume(
                    OptimizeRequested, self.handler, message, subject=_SUBJECT
                )
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await raw.nak()
            raise
        finally:
            self._slots.release()

    @contextlib.asynccontextmanager
    async def _heartbeats(self, message: NatsMessage) -> AsyncIterator[None]:
        async def beat() -> None:
            while True:
                try:
                    await message.in_progress()
                except Exception as e:  # the next beat may get through; ack_wait is 3 beats
                    _log.warning("run heartbeat failed: %s", e)
                await asyncio.sleep(self.heartbeat_s)

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def stop(self) -> None:
        """Stop taking runs, cancel those in progress and hand their messages back."""
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
