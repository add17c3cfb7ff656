"""The response-cache port of the LM client, its in-memory LRU implementation, and the
process-independent cache key that every backend (in memory, NATS KV) shares."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import LMBadRequestError

if TYPE_CHECKING:
    # Type-only: lm.py imports this module to build its client.
    from .lm import LMRequest, LMResponse

# Bump when the canonical form changes, so that old entries in a shared store stop matching.
_KEY_VERSION = "dspex-lm-cache/1"

TRANSPORT_ONLY_EXTRA = frozenset({"extra_headers"})
"""Keys of ``LMRequest.extra`` that are passed to the provider but left out of the cache
key: HTTP headers (tracing, routing, test fault injection) do not change the answer, and
keying on them would make every traced request a miss."""


class ResponseCache(ABC):
    """Stores LM responses by :func:`cache_key`.

    Invariants every implementation keeps:

    - Values are immutable: :class:`LMResponse` is frozen and is stored as given.
    - ``get`` after ``put(key, r)`` returns a response equal to ``r`` or, if the entry was
      evicted or expired, ``None``; never a response stored under another key. Marking a hit
      as ``cached`` is the client's job, not the cache's.
    - Concurrent ``put`` of one key is harmless: equal requests give interchangeable
      responses, so whichever write wins is a correct answer.
    - A cache never raises for a missing key; ``get`` returns ``None``.
    """

    @abstractmethod
    async def get(self, key: str) -> LMResponse | None: ...

    @abstractmethod
    async def put(self, key: str, response: LMResponse) -> None: ...


class InMemoryLRUCache(ResponseCache):
    """A per-process cache that forgets the least recently used entry beyond
    ``max_entries``. Safe under asyncio: no method awaits while it holds the dict."""

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[str, LMResponse] = OrderedDict()

    async def get(self, key: str) -> LMResponse | None:
        response = self._entries.get(key)
        if response is not None:
            self._entries.move_to_end(key)
        return response

    async def put(self, key: str, response: LMResponse) -> None:
        self._entries[key] = response
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def cache_key(request: LMRequest) -> str:
    """A sha256 hex digest of everything in ``request`` that can change the answer.

    The digest is computed over canonical JSON (sorted keys, no whitespace), so it is the
    same in every process and Python version; 64 lowercase hex characters are a valid NATS
    KV key. ``temperature`` is normalised to float so ``0`` and ``0.0`` share a key."""
    extra = {k: v for k, v in request.extra.items() if k not in TRANSPORT_ONLY_EXTRA}
    payload = [
        _KEY_VERSION,
        request.model,
        request.messages,
        None if request.temperature is None else float(request.temperature),
        request.max_tokens,
        request.response_format,
        extra,
    ]
    try:
        text = json.dumps(
            payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable
        )
    except (TypeError, ValueError) as e:
        raise LMBadRequestError(f"request cannot be serialised for the cache key: {e}") from e
    return hashlib.sha256(text.encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    # Only types whose JSON form is stable across processes; a repr() fallback would embed
    # memory addresses and silently turn every lookup into a miss.
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, frozenset | set):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
