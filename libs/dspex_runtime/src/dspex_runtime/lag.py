"""JetStream consumer lag as Prometheus gauges: messages waiting for, and delivered but not
yet acknowledged by, each durable consumer a replica owns. Prometheus collectors are
synchronous and the NATS client is not, so a background task refreshes the gauges."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry, Gauge

__all__ = ["ConsumerLag"]

_log = logging.getLogger(__name__)


class ConsumerLag:
    """Gauges ``dspex_consumer_pending_messages`` and ``dspex_consumer_ack_pending_messages``
    by ``stream`` and ``consumer``, for each consumer given to :meth:`watch`, refreshed every
    ``interval_s`` between :meth:`start` and :meth:`stop`. Every replica of a service
    reports the same shared consumers; aggregate with ``max by (stream, consumer)``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        jetstream: Callable[[], JetStreamContext],
        *,
        interval_s: float,
    ) -> None:
        self._jetstream = jetstream
        self.interval_s = interval_s
        self.pending = Gauge(
            "dspex_consumer_pending_messages",
            "Messages of the stream not yet delivered to the durable consumer (its backlog).",
            ["stream", "consumer"],
            registry=registry,
        )
        self.ack_pending = Gauge(
            "dspex_consumer_ack_pending_messages",
            "Messages delivered to the durable consumer and not yet acknowledged.",
            ["stream", "consumer"],
            registry=registry,
        )
        self._consumers: list[tuple[str, str]] = []
        self._task: asyncio.Task[None] | None = None

    def watch(self, stream: str, durable: str) -> None:
        if (stream, durable) not in self._consumers:
            self._consumers.append((stream, durable))

    async def refresh(self) -> None:
        """Read every watched consumer's info once; one that cannot be read (not created
        yet, NATS away) keeps its last values."""
        js = self._jetstream()
        for stream, durable in self._consumers:
            try:
                info = await js.consumer_info(stream, durable)
            except Exception as e:
                _log.debug("no info on consumer %s of %s: %s", durable, stream, e)
                continue
            self.pending.labels(stream, durable).set(info.num_pending or 0)
            self.ack_pending.labels(stream, durable).set(info.num_ack_pending or 0)

    async def start(self) -> None:
        """Refresh now (the gauges exist from the first scrape on), then in the background."""
        await self.refresh()
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="dspex-consumer-lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.refresh()
            except Exception:
                _log.warning("could not refresh consumer lag", exc_info=True)
