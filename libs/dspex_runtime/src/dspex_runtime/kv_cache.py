"""The NATS KV backend of the kernel library's LM response cache: one bucket shared by
every replica, so an answer paid for once is served to all of them."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BadRequestError, KeyNotFoundError
from nats.js.kv import KeyValue

from dspex_kernel.cache import ResponseCache
from dspex_kernel.lm import LMResponse, Usage

__all__ = ["DEFAULT_BUCKET", "DEFAULT_TTL_S", "NatsKVCache", "decode_response", "encode_response"]

_log = logging.getLogger(__name__)

DEFAULT_BUCKET = "dspex_lm_cache"
DEFAULT_TTL_S = 7 * 24 * 3600.0

# Version of the stored value's layout; a reader that meets another version treats the entry
# as a miss, so a rolling upgrade never serves a half-understood answer.
_VALUE_VERSION = 1


class NatsKVCache(ResponseCache):
    """A :class:`~dspex_kernel.cache.ResponseCache` in a JetStream KV bucket (file storage,
    history 1, entries expire after ``ttl_s``).

    The bucket is created, or bound if it exists, on first use; :meth:`create` does it
    up front. A value that cannot be decoded is logged and read as a miss: the next ``put``
    of the key replaces it. Connection errors propagate, and the LM client counts them as
    cache errors and calls the model instead."""

    def __init__(
        self,
        js: JetStreamContext | Client,
        *,
        bucket: str = DEFAULT_BUCKET,
        ttl_s: float = DEFAULT_TTL_S,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self._js = js.jetstream() if isinstance(js, Client) else js
        self.bucket = bucket
        self.ttl_s = ttl_s
        self._kv: KeyValue | None = None
        self._bind_lock = asyncio.Lock()

    @classmethod
    async def create(
        cls,
        js: JetStreamContext | Client,
        *,
        bucket: str = DEFAULT_BUCKET,
        ttl_s: float = DEFAULT_TTL_S,
    ) -> NatsKVCache:
        """A cache whose bucket exists when this returns (created or bound, idempotently)."""
        cache = cls(js, bucket=bucket, ttl_s=ttl_s)
        await cache._bucket()
        return cache

    async def get(self, key: str) -> LMResponse | None:
        kv = await self._bucket()
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        try:
            return decode_response(entry.value)
        except ValueError as e:
            _log.warning(
                "LM cache entry %s in bucket %s is unreadable (%s); miss", key, self.bucket, e
            )
            return None

    async def put(self, key: str, response: LMResponse) -> None:
        kv = await self._bucket()
        await kv.put(key, encode_response(response))

    async def _bucket(self) -> KeyValue:
        if self._kv is not None:
            return self._kv
        async with self._bind_lock:
            if self._kv is None:
                self._kv = await self._create_or_bind()
        return self._kv

    async def _create_or_bind(self) -> KeyValue:
        config = KeyValueConfig(
            bucket=self.bucket,
            history=1,
            ttl=self.ttl_s,
            storage=StorageType.FILE,
            description="DSPEx LM response cache",
        )
        try:
            # The server accepts a create with an identical configuration, so replicas that
            # start together all succeed.
            return await self._js.create_key_value(config)
        except BadRequestError as e:
            # Exists with another configuration (say, an operator changed its TTL): use it
            # as it is rather than refuse to start.
            _log.warning("LM cache bucket %s exists with another configuration: %s", self.bucket, e)
            return await self._js.key_value(self.bucket)


def encode_response(response: LMResponse) -> bytes:
    """Compact JSON of every field of ``response``, so that a read equals what was put."""
    usage = response.usage
    value = {
        "v": _VALUE_VERSION,
        "text": response.text,
        "model": response.model,
        "usage": [
            usage.calls,
            usage.cached_calls,
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cost_usd,
        ],
        "latency_s": response.latency_s,
        "cached": response.cached,
        "finish_reason": response.finish_reason,
    }
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def decode_response(data: bytes) -> LMResponse:
    """The response :func:`encode_response` wrote; ``ValueError`` for anything else."""
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"not JSON: {e}") from e
    if not isinstance(value, dict) or value.get("v") != _VALUE_VERSION:
        raise ValueError("not a version-1 cache value")
    try:
        calls, cached_calls, prompt_tokens, completion_tokens, cost_usd = value["usage"]
        usage = Usage(
            _typed(calls, int),
            _typed(cached_calls, int),
            _typed(prompt_tokens, int),
            _typed(completion_tokens, int),
            float(_typed(cost_usd, int | float)),
        )
        finish_reason = value["finish_reason"]
        return LMResponse(
            _typed(value["text"], str),
            _typed(value["model"], str),
            usage,
            float(_typed(value["latency_s"], int | float)),
            _typed(value["cached"], bool),
            None if finish_reason is None else _typed(finish_reason, str),
        )
    except (KeyError, TypeError) as e:
        raise ValueError(f"malformed cache value: {e!r}") from e


def _typed(value: Any, kind: Any) -> Any:
    # bool is an int in Python; a token count of `true` is corruption, not 1.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise TypeError(f"{value!r} is not {kind}")
    return value
