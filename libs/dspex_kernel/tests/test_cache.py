"""Unit tests of the response-cache port (the contract every backend must pass, shared from
``dspex_kernel.testing``), the in-memory LRU, and the cache key shared by all backends."""

from __future__ import annotations

import hashlib
import re

import pytest

from dspex_kernel.cache import InMemoryLRUCache, ResponseCache, cache_key
from dspex_kernel.errors import LMBadRequestError
from dspex_kernel.testing import ResponseCacheContract
from dspex_kernel.testing import cache_test_request as request
from dspex_kernel.testing import cache_test_response as response

pytestmark = pytest.mark.unit

# The token charset NATS KV accepts for keys.
NATS_KV_KEY = re.compile(r"^[-/_=.a-zA-Z0-9]+$")


class TestInMemoryLRUCache(ResponseCacheContract):
    @pytest.fixture
    def cache(self) -> ResponseCache:
        return InMemoryLRUCache()


async def test_lru_evicts_the_least_recently_used() -> None:
    cache = InMemoryLRUCache(max_entries=2)
    await cache.put("a", response("A"))
    await cache.put("b", response("B"))
    assert await cache.get("a") == response("A")  # "a" is now the most recent
    await cache.put("c", response("C"))
    assert await cache.get("b") is None
    assert await cache.get("a") == response("A")
    assert await cache.get("c") == response("C")
    assert len(cache) == 2


async def test_overwriting_a_key_does_not_grow_the_cache() -> None:
    cache = InMemoryLRUCache(max_entries=2)
    for text in ("A", "B", "C"):
        await cache.put("k", response(text))
    assert len(cache) == 1
    assert await cache.get("k") == response("C")


def test_max_entries_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        InMemoryLRUCache(max_entries=0)


def test_equal_requests_share_a_key() -> None:
    assert cache_key(request()) == cache_key(request())
    reordered = request(extra={"rollout_id": 3, "seed": 1})
    assert cache_key(reordered) == cache_key(request())
    assert cache_key(request(temperature=0)) == cache_key(request(temperature=0.0))


def test_key_is_stable_across_processes_and_versions() -> None:
    # A shared store (NATS KV) outlives processes and deployments: changing the canonical
    # form must be deliberate (bump its version prefix) and update this golden text.
    canonical = (
        '["dspex-lm-cache/1","openai/sim-base",'
        '[{"content":"Answer briefly.","role":"system"},'
        '{"content":"capital of France?","role":"user"}],'
        '0.7,256,{"type":"json_object"},{"rollout_id":3,"seed":1}]'
    )
    assert cache_key(request()) == hashlib.sha256(canonical.encode()).hexdigest()


@pytest.mark.parametrize(
    "change",
    [
        {"model": "openai/sim-large"},
        {"messages": [{"role": "user", "content": "capital of Spain?"}]},
        {"temperature": 0.0},
        {"temperature": None},
        {"max_tokens": 512},
        {"response_format": None},
        {"extra": {"seed": 2, "rollout_id": 3}},
        {"extra": {"seed": 1}},
    ],
)
def test_anything_that_changes_the_answer_changes_the_key(change: dict[str, object]) -> None:
    assert cache_key(request(**change)) != cache_key(request())


def test_headers_are_transport_only_and_not_keyed() -> None:
    with_headers = request(extra={"seed": 1, "rollout_id": 3, "extra_headers": {"X-T": "1"}})
    assert cache_key(with_headers) == cache_key(request())


def test_key_is_a_valid_nats_kv_key() -> None:
    key = cache_key(request())
    assert len(key) == 64
    assert NATS_KV_KEY.match(key)


def test_unserialisable_requests_are_refused() -> None:
    with pytest.raises(LMBadRequestError, match="cache key"):
        cache_key(request(extra={"callback": object()}))
