"""The evaluator's LM: one client per replica (see :mod:`dspex_runtime.lm_settings`) behind
a limit on the calls in flight, so that a replica scoring many proposals at once still puts
a bounded load on the model."""

from __future__ import annotations

import asyncio

from dspex_kernel import LM, LMRequest, LMResponse


class BoundedLM:
    """An :class:`~dspex_kernel.LM` that lets at most ``limit`` calls through at once;
    the others wait their turn in arrival order."""

    def __init__(self, lm: LM, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._lm = lm
        self._slots = asyncio.Semaphore(limit)
        self.limit = limit

    async def complete(self, request: LMRequest) -> LMResponse:
        async with self._slots:
            return await self._lm.complete(request)
