"""Test helpers for code built on the kernel: an in-memory scripted LM, builders for
chat-format replies, what a strategy asked of its evaluate backend (the examples sent are
only those not scored before), and the contract tests every response-cache backend must
pass."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .cache import ResponseCache, cache_key
from .lm import LMRequest, LMResponse, Usage
from .strategies._log import InMemoryCallLog
from .strategies._records import canonical

_MARKER = re.compile(r"`\[\[ ## (\w+) ## \]\]`")


class ScriptedLM:
    """An LM fake: ``reply(request) -> text``. Records every request it gets."""

    def __init__(self, reply: Callable[[LMRequest], str]) -> None:
        self.reply = reply
        self.requests: list[LMRequest] = []

    async def complete(self, request: LMRequest) -> LMResponse:
        self.requests.append(request)
        usage = Usage(calls=1, prompt_tokens=10, completion_tokens=5)
        return LMResponse(self.reply(request), request.model, usage)


class Coverage:
    """The examples an evaluate backend was sent per configuration and split. The runner
    sends only those a configuration has not been scored on in the run, so the call that
    completes a split is where the strategy asked for all of it (a full evaluation)."""

    def __init__(self, sizes: Mapping[str, int]) -> None:
        self.sizes = dict(sizes)
        self._sent: dict[tuple[str, str], set[int]] = {}

    def add(self, overrides: Mapping[str, Any], split: str, indices: Sequence[int]) -> bool:
        """Record a call; whether it completes ``split`` for ``overrides``."""
        key = (canonical(overrides), split)
        sent = self._sent.setdefault(key, set())
        before = len(sent)
        sent.update(indices)
        return before < self.sizes[split] == len(sent)


async def requested_evaluations(
    log: InMemoryCallLog,
) -> list[tuple[dict[str, Any], str, tuple[int, ...]]]:
    """The evaluations a run asked for, in call order, as its log records them (overrides,
    split, indices), whatever its backend was sent."""
    out = []
    for n in log.numbers():
        record = await log.get(n)
        if record is not None and record.get("kind") == "evaluate":
            out.append((record["overrides"], record["split"], tuple(record["indices"])))
    return out


def requested_fields(request: LMRequest) -> list[str]:
    """The output fields a chat-format request asks for, read from its last message."""
    fields = _MARKER.findall(request.messages[-1]["content"])
    return [f for f in fields if f != "completed"]


def chat_reply(**values: object) -> str:
    """A reply in the ``[[ ## field ## ]]`` format with the given field values."""
    body = "".join(f"[[ ## {k} ## ]]\n{v}\n\n" for k, v in values.items())
    return body + "[[ ## completed ## ]]"


def cache_test_response(text: str = "Paris", **overrides: object) -> LMResponse:
    """A response with every field set, as a cache stores it."""
    fields: dict[str, object] = {
        "text": text,
        "model": "openai/sim-base",
        "usage": Usage(1, 0, 10, 2, 0.001),
        "latency_s": 0.05,
        "cached": False,
        "finish_reason": "stop",
    }
    fields.update(overrides)
    return LMResponse(**fields)  # type: ignore[arg-type]


def cache_test_request(**overrides: object) -> LMRequest:
    """A request with every keyed field set; ``overrides`` replace fields."""
    fields: dict[str, object] = {
        "model": "openai/sim-base",
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "capital of France?"},
        ],
        "temperature": 0.7,
        "max_tokens": 256,
        "response_format": {"type": "json_object"},
        "extra": {"seed": 1, "rollout_id": 3},
    }
    fields.update(overrides)
    return LMRequest(**fields)  # type: ignore[arg-type]


class ResponseCacheContract:
    """The invariants of :class:`~dspex_kernel.cache.ResponseCache`, run against a backend
    by a test class that subclasses this one and defines a ``cache`` pytest fixture.

    Test folders are not importable packages, so the contract lives here for every
    backend's tests (in memory here, NATS KV in the service runtime) to share. It needs an
    async-capable pytest (``asyncio_mode = "auto"``) but does not import pytest itself."""

    async def test_missing_key_is_none(self, cache: ResponseCache) -> None:
        assert await cache.get(cache_key(cache_test_request())) is None

    async def test_get_returns_what_was_put(self, cache: ResponseCache) -> None:
        key = cache_key(cache_test_request())
        await cache.put(key, cache_test_response())
        assert await cache.get(key) == cache_test_response()

    async def test_every_field_survives_the_round_trip(self, cache: ResponseCache) -> None:
        odd = cache_test_response(
            'Ünïcode — 東京 "quoted"\n[[ ## answer ## ]]',
            usage=Usage(3, 1, 1_000_000, 7, 0.1 + 0.2),
            latency_s=0.0,
            cached=True,
            finish_reason=None,
        )
        key = cache_key(cache_test_request(model="openai/sim-odd"))
        await cache.put(key, odd)
        assert await cache.get(key) == odd

    async def test_keys_do_not_mix(self, cache: ResponseCache) -> None:
        a = cache_key(cache_test_request(temperature=0.0))
        b = cache_key(cache_test_request(temperature=1.0))
        await cache.put(a, cache_test_response("A"))
        await cache.put(b, cache_test_response("B"))
        got = (await cache.get(a), await cache.get(b))
        assert got == (cache_test_response("A"), cache_test_response("B"))

    async def test_a_later_put_replaces_the_value(self, cache: ResponseCache) -> None:
        key = cache_key(cache_test_request())
        await cache.put(key, cache_test_response("old"))
        await cache.put(key, cache_test_response("new"))
        assert await cache.get(key) == cache_test_response("new")

    async def test_concurrent_puts_of_one_key_are_harmless(self, cache: ResponseCache) -> None:
        key = cache_key(cache_test_request())
        candidates = [cache_test_response(f"answer {i}") for i in range(10)]
        await asyncio.gather(*(cache.put(key, r) for r in candidates))
        assert await cache.get(key) in candidates
