"""Live updates of the run explorer. A registry replica that recorded a change to a run
announces it on a core-NATS subject; every replica hears it and wakes the open pages
(server-sent event streams) that show that run or the run list. Announcements carry only
the run id: a page that wakes reads the registry's current data, so nothing is lost when
announcements are merged or one is missed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from dspex_contracts import subjects

_log = logging.getLogger(__name__)

# A page asks for fresh data at most this often, however fast a run reports progress.
MIN_INTERVAL_S = 0.5


class Listener:
    """One open page: the run ids changed since it last looked (``None`` = any run)."""

    def __init__(self, run_id: str | None) -> None:
        self.run_id = run_id
        self.changed: set[str] = set()
        self.wake = asyncio.Event()

    def offer(self, run_id: str) -> None:
        if self.run_id is None or self.run_id == run_id:
            self.changed.add(run_id)
            self.wake.set()

    def take(self) -> list[str]:
        taken = sorted(self.changed)
        self.changed.clear()
        self.wake.clear()
        return taken


class RunChanges:
    """This replica's open pages, woken by the announcements every replica publishes."""

    subject = subjects.RUN_CHANGED_NOTICE

    def __init__(self, *, min_interval_s: float = MIN_INTERVAL_S) -> None:
        self.listeners: set[Listener] = set()
        self.min_interval_s = min_interval_s

    def heard(self, run_id: str) -> None:
        for listener in list(self.listeners):
            listener.offer(run_id)

    async def stream(
        self, run_id: str | None, *, stopping: Callable[[], bool]
    ) -> AsyncIterator[list[str]]:
        """Yield the changed run ids as they are announced, at most every
        ``min_interval_s``, until ``stopping()`` (checked every second) or the page leaves."""
        listener = Listener(run_id)
        self.listeners.add(listener)
        try:
            while not stopping():
                try:
                    await asyncio.wait_for(listener.wake.wait(), timeout=1.0)
                except TimeoutError:
                    continue
                yield listener.take()
                await asyncio.sleep(self.min_interval_s)
        finally:
            self.listeners.discard(listener)


def decode_notice(body: bytes) -> str | None:
    """The run id an announcement names, or None for a body that is not one."""
    try:
        text = body.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if not text or len(text) > 128 or any(c.isspace() for c in text):
        return None
    return text
