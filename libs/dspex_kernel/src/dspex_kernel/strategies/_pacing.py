"""Pacing a run: asking control before each new call (waiting while it says pause) and
keeping the run's wall clock, pauses excluded."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ._run_types import Control, RunCancelled, RunStatus, port


class Pacer:
    """One call at a time asks ``control``, so a pause is one interval however many calls
    wait behind it. ``on_status`` hears "paused" and "running" when a pause begins and
    ends. Wall time starts at :meth:`start` and leaves pauses out."""

    def __init__(
        self,
        control: Control | None,
        clock: Callable[[], float],
        poll_s: float,
        on_status: Callable[[RunStatus], Awaitable[None]],
    ) -> None:
        self._control, self._clock, self._poll_s = control, clock, poll_s
        self._on_status = on_status
        self._gate = asyncio.Lock()
        self._started: float | None = None
        self._paused_s = 0.0
        self._pause_started: float | None = None
        self.cancelled = False
        self.closed = False

    @property
    def started(self) -> bool:
        return self._started is not None

    def start(self) -> None:
        self._started = self._clock()

    def elapsed(self) -> float:
        if self._started is None:
            return 0.0
        now = self._clock()
        paused = self._paused_s
        if self._pause_started is not None:
            paused += now - self._pause_started
        return max(0.0, now - self._started - paused)

    async def wait_for_go(self) -> None:
        """Return when control says run; raise :class:`RunCancelled` on cancel (and for
        every later call) or once the run is closed."""
        async with self._gate:
            paused = False
            while True:
                if self.closed or self.cancelled:
                    raise RunCancelled()
                decision = "run" if self._control is None else await port(self._control())
                if decision == "run":
                    break
                if decision == "cancel":
                    self.cancelled = True
                    self._end_pause()
                    raise RunCancelled()
                if decision != "pause":
                    raise ValueError(f"control said {decision!r}; expected run, pause or cancel")
                if not paused:
                    paused, self._pause_started = True, self._clock()
                    await self._on_status("paused")
                await asyncio.sleep(self._poll_s)
            if paused:
                self._end_pause()
                await self._on_status("running")

    def _end_pause(self) -> None:
        if self._pause_started is not None:
            self._paused_s += self._clock() - self._pause_started
            self._pause_started = None
