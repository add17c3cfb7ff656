"""The strategy's own LM calls (instruction proposals, introspection): the replica's LM
client, built on first use (importing litellm takes seconds, and most strategies make no
such call), with the run's proposer model settings applied."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

from dspex_contracts import LMSettings
from dspex_kernel import LM, LMRequest, LMResponse, Usage

__all__ = ["LazyLM", "RunLM"]


class LazyLM:
    """An LM client made by ``build`` the first time it is needed, then shared."""

    def __init__(self, build: Callable[[], Awaitable[LM]]) -> None:
        self._build = build
        self._client: LM | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> LM:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await self._build()
        return self._client

    async def complete(self, request: LMRequest) -> LMResponse:
        return await (await self.client()).complete(request)


class RunLM:
    """The runner's ``lm(call, request)`` for one run: the request's model and temperature
    unless the run's settings name others."""

    def __init__(
        self,
        lm: LM,
        settings: LMSettings,
        default_model: str | None,
        *,
        on_spent: Callable[[Usage], None] | None = None,
    ) -> None:
        self._lm = lm
        self._settings = settings
        self._default_model = default_model
        self._on_spent = on_spent

    async def __call__(self, call: int, request: LMRequest) -> LMResponse:
        model = self._settings.model or request.model or self._default_model or ""
        temperature = (
            self._settings.temperature
            if self._settings.temperature is not None
            else request.temperature
        )
        request = dataclasses.replace(request, model=model, temperature=temperature)
        response = await self._lm.complete(request)
        if self._on_spent is not None:
            self._on_spent(response.usage)
        return response
