"""The LM port: typed requests, responses and usage, and the client every model call goes
through (retries with back-off, response cache, usage and cost accounting)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from .cache import ResponseCache, cache_key
from .errors import DSPExError, LMError

_log = logging.getLogger(__name__)


class Message(TypedDict):
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Usage:
    """What model calls cost. Adds up with ``+``."""

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.calls + other.calls,
            self.cached_calls + other.cached_calls,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cost_usd + other.cost_usd,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "cached_calls": self.cached_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 8),
        }


ZERO_USAGE = Usage()


@dataclass(frozen=True, slots=True)
class LMRequest:
    """One chat completion. ``extra`` carries provider parameters that change the answer
    (``seed``, ``rollout_id``, ``n``...); all of it is part of the cache key except
    transport-only keys (``extra_headers``, see ``dspex_kernel.cache``)."""

    model: str
    messages: list[Message]
    temperature: float | None = None
    max_tokens: int | None = None
    response_format: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LMResponse:
    text: str
    model: str
    usage: Usage
    latency_s: float = 0.0
    cached: bool = False
    finish_reason: str | None = None


class LM(Protocol):
    """Anything that completes chat requests. Implementations raise
    :class:`~dspex_kernel.errors.LMError` subclasses, never provider exceptions."""

    async def complete(self, request: LMRequest) -> LMResponse: ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a model is served. ``None`` leaves the choice to the provider library (for
    litellm: its defaults and the provider's usual environment variables)."""

    api_base: str | None = None
    api_key: str | None = None

    def __repr__(self) -> str:
        # Secrets must never reach logs, tracebacks or reprs of objects holding an Endpoint.
        key = None if self.api_key is None else "'***'"
        return f"Endpoint(api_base={self.api_base!r}, api_key={key})"


@dataclass(frozen=True, slots=True)
class RawCompletion:
    """What a transport returns for one successful provider call. ``cost_usd`` is 0.0 when
    the provider library does not know the model's price."""

    text: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    cost_usd: float = 0.0


Transport = Callable[[LMRequest, Endpoint, float], Awaitable[RawCompletion]]
"""``transport(request, endpoint, timeout_s)``: one provider call, no retries, raising
:class:`~dspex_kernel.errors.LMError` subclasses. The client boundary: tests and benchmarks
inject a stub here; the default is litellm."""

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class LMCall:
    """One finished :meth:`LMClient.complete`, as observers see it. ``usage`` is the call's
    (zero when it failed); ``cache_hit`` is None when the client has no cache;
    ``error_code`` is the :class:`~dspex_kernel.errors.DSPExError` code of a failed call."""

    model: str
    latency_s: float
    usage: Usage = ZERO_USAGE
    cache_hit: bool | None = None
    error_code: str | None = None


LMObserver = Callable[[LMCall], None]
"""Told of every finished call, on the caller's task: it must be quick and must not raise
(an observer that does is logged and ignored). Services count calls with one; the kernel
library stays free of any metrics package."""


class LMClient:
    """The :class:`LM` every model call goes through.

    - Responses are cached by :func:`~dspex_kernel.cache.cache_key` when ``cache`` is set
      (every request is cached; temperature and ``extra`` are part of the key).
    - A cache hit reports ``Usage(calls=1, cached_calls=1, <stored tokens>, cost_usd=0.0)``:
      tokens describe the answer, so they are the same warm or cold; cost is what was paid,
      and a hit costs nothing. Real provider calls are ``calls - cached_calls``.
    - Errors with ``retryable=True`` are retried up to ``max_retries`` times, waiting
      ``max(retry_after, full-jitter exponential back-off)``. A ``retry_after`` longer than
      ``backoff_max_s`` is not waited for here: the error is raised at once so that the
      caller (message redelivery) can wait without holding a worker.
    - ``prices`` (USD per 1M prompt and completion tokens, by model string) price calls
      whose transport reports a cost of 0; the litellm transport is told them too.
    - ``timeout_s`` is passed to the transport, which enforces it per attempt.
    - Each ``observers`` entry is told of every call once it has finished (:class:`LMCall`):
      served, served from the cache, or failed.
    """

    def __init__(
        self,
        *,
        endpoint: Endpoint | None = None,
        endpoints: Mapping[str, Endpoint] | None = None,
        cache: ResponseCache | None = None,
        max_retries: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 20.0,
        timeout_s: float = 60.0,
        prices: Mapping[str, tuple[float, float]] | None = None,
        transport: Transport | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        observers: Sequence[LMObserver] = (),
    ) -> None:
        if max_retries < 0 or backoff_base_s < 0 or backoff_max_s < 0 or timeout_s <= 0:
            raise ValueError("retries and back-off must be >= 0 and timeout_s > 0")
        self._litellm_transport = transport is None
        if transport is None:
            # Imported here, not at the top: _litellm imports this module's types.
            from ._litellm import litellm_completion, register_prices

            register_prices(prices or {})
            transport = litellm_completion
        self._endpoint = endpoint or Endpoint()
        self._endpoints = dict(endpoints or {})
        self._cache = cache
        self._max_retries = max_retries
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._timeout_s = timeout_s
        self._prices = dict(prices or {})
        self._transport = transport
        self._sleep = sleep
        self._uniform = (rng or random.Random()).uniform
        self._observers = list(observers)
        # Running totals as plain numbers: one Usage object per call would be churn.
        self._calls = self._cached_calls = self._prompt_tokens = self._completion_tokens = 0
        self._cost_usd = 0.0
        self._failed_calls = self._cache_errors = 0
        self._retries: dict[str, int] = {}

    @property
    def usage(self) -> Usage:
        """Everything this client has served since it was created."""
        return Usage(
            self._calls,
            self._cached_calls,
            self._prompt_tokens,
            self._completion_tokens,
            self._cost_usd,
        )

    @property
    def retries(self) -> int:
        return sum(self._retries.values())

    @property
    def retries_by_code(self) -> dict[str, int]:
        """Retries made so far, by the error code that caused them."""
        return dict(self._retries)

    @property
    def failed_calls(self) -> int:
        """Calls to :meth:`complete` that raised."""
        return self._failed_calls

    @property
    def cache_errors(self) -> int:
        """Cache reads or writes that failed and were treated as misses."""
        return self._cache_errors

    def add_observer(self, observer: LMObserver) -> None:
        """Tell ``observer`` of every call from now on (see :data:`LMObserver`)."""
        self._observers.append(observer)

    async def prepare(self) -> None:
        """Load litellm now (in a worker thread) when this client calls through it, instead
        of on the first call: its import takes seconds of CPU, which a service spends
        before it reports itself ready rather than while requests queue up."""
        if self._litellm_transport:
            from ._litellm import load_litellm

            await asyncio.to_thread(load_litellm)

    async def complete(self, request: LMRequest) -> LMResponse:
        started = time.perf_counter()
        key = None
        if self._cache is not None:
            key = cache_key(request)
            hit = await self._cache_get(key)
            if hit is not None:
                response = self._serve_hit(hit, started)
                self._notify(LMCall(request.model, response.latency_s, response.usage, True))
                return response
        cache_hit = False if self._cache is not None else None
        endpoint = self._endpoints.get(request.model, self._endpoint)
        try:
            try:
                raw = await self._attempt(request, endpoint)
            except LMError as e:
                # The first attempt runs outside tenacity: AsyncRetrying costs ~40 µs a call.
                raw = await self._retry(request, endpoint, e)
        except DSPExError as e:
            self._failed_calls += 1
            latency = time.perf_counter() - started
            self._notify(LMCall(request.model, latency, ZERO_USAGE, cache_hit, e.code))
            raise
        cost = raw.cost_usd or self._price(request.model, raw)
        usage = Usage(1, 0, raw.prompt_tokens, raw.completion_tokens, cost)
        response = LMResponse(
            raw.text,
            request.model,
            usage,
            time.perf_counter() - started,
            False,
            raw.finish_reason,
        )
        self._calls += 1
        self._prompt_tokens += raw.prompt_tokens
        self._completion_tokens += raw.completion_tokens
        self._cost_usd += cost
        if key is not None:
            await self._cache_put(key, response)
        self._notify(LMCall(request.model, response.latency_s, usage, cache_hit))
        return response

    def _notify(self, call: LMCall) -> None:
        for observer in self._observers:
            try:
                observer(call)
            except Exception:
                # Counting a call must never fail it.
                _log.warning("LM call observer failed", exc_info=True)

    async def _attempt(self, request: LMRequest, endpoint: Endpoint) -> RawCompletion:
        try:
            return await self._transport(request, endpoint, self._timeout_s)
        except DSPExError:
            raise
        except Exception as e:
            # Keep the LM protocol's promise (our errors only) even for a faulty transport.
            raise LMError(f"transport failed: {type(e).__name__}: {e}") from e

    async def _retry(self, request: LMRequest, endpoint: Endpoint, first: LMError) -> RawCompletion:
        if self._max_retries == 0 or not self._is_retryable(first):
            raise first
        # Tenacity counts the failed first attempt too: it is replayed, not re-sent.
        replay = [first]

        async def attempt() -> RawCompletion:
            if replay:
                raise replay.pop()
            return await self._attempt(request, endpoint)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(self._is_retryable),
            sleep=self._sleep,
            before_sleep=self._count_retry,
            reraise=True,
        )
        result: RawCompletion = await retrying(attempt)
        return result

    def _is_retryable(self, error: BaseException) -> bool:
        if not isinstance(error, DSPExError) or not error.retryable:
            return False
        return error.retry_after is None or error.retry_after <= self._backoff_max_s

    def _wait(self, state: RetryCallState) -> float:
        ceiling = min(self._backoff_max_s, self._backoff_base_s * 2 ** (state.attempt_number - 1))
        # Full jitter spreads the retries of many clients hit by one outage; only timing
        # depends on the random draw, never a result.
        wait = self._uniform(0.0, ceiling)
        error = state.outcome.exception() if state.outcome is not None else None
        retry_after = getattr(error, "retry_after", None)
        return max(wait, retry_after) if retry_after is not None else wait

    def _count_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        code = getattr(error, "code", "unknown")
        self._retries[code] = self._retries.get(code, 0) + 1

    def _price(self, model: str, raw: RawCompletion) -> float:
        price = self._prices.get(model)
        if price is None:
            return 0.0
        return (raw.prompt_tokens * price[0] + raw.completion_tokens * price[1]) / 1_000_000

    def _serve_hit(self, hit: LMResponse, started: float) -> LMResponse:
        stored = hit.usage
        usage = Usage(1, 1, stored.prompt_tokens, stored.completion_tokens, 0.0)
        self._calls += 1
        self._cached_calls += 1
        self._prompt_tokens += stored.prompt_tokens
        self._completion_tokens += stored.completion_tokens
        return LMResponse(
            hit.text, hit.model, usage, time.perf_counter() - started, True, hit.finish_reason
        )

    async def _cache_get(self, key: str) -> LMResponse | None:
        assert self._cache is not None
        try:
            return await self._cache.get(key)
        except Exception:
            # The cache is an optimisation: a failing backend degrades to misses.
            self._cache_errors += 1
            _log.warning("LM cache read failed; treating as a miss", exc_info=True)
            return None

    async def _cache_put(self, key: str, response: LMResponse) -> None:
        assert self._cache is not None
        try:
            await self._cache.put(key, response)
        except Exception:
            self._cache_errors += 1
            _log.warning("LM cache write failed; response not cached", exc_info=True)
