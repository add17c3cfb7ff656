"""The NATS KV LM cache against a real nats-server: the response-cache contract every
backend passes, bucket creation, unreadable values, and two LM clients sharing answers."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import StorageType

from dspex_kernel.cache import ResponseCache, cache_key
from dspex_kernel.lm import Endpoint, LMClient, LMRequest, RawCompletion
from dspex_kernel.testing import ResponseCacheContract, cache_test_request, cache_test_response
from dspex_runtime.kv_cache import (
    DEFAULT_BUCKET,
    DEFAULT_TTL_S,
    NatsKVCache,
    decode_response,
    encode_response,
)
from dspex_runtime.testing.fixtures import nats_server_module  # noqa: F401 - a fixture
from dspex_runtime.testing.nats import NatsServer

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(
    nats_server_module: NatsServer,  # noqa: F811 - the fixture imported above
) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server_module.url)
    yield client
    await client.close()


def fresh_bucket(request: pytest.FixtureRequest) -> str:
    # One server serves the module: a bucket per test keeps tests independent.
    return "lm_" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]


class TestNatsKVCache(ResponseCacheContract):
    @pytest.fixture
    async def cache(self, client: Client, request: pytest.FixtureRequest) -> ResponseCache:
        return await NatsKVCache.create(client.jetstream(), bucket=fresh_bucket(request))


async def test_the_bucket_is_file_backed_with_one_revision_and_a_ttl(client: Client) -> None:
    await NatsKVCache.create(client, ttl_s=3600)
    status = await (await client.jetstream().key_value(DEFAULT_BUCKET)).status()
    assert status.history == 1
    assert status.ttl == 3600
    assert status.stream_info.config.storage == StorageType.FILE


async def test_creating_the_bucket_again_binds_it_and_keeps_its_entries(
    client: Client, request: pytest.FixtureRequest
) -> None:
    bucket = fresh_bucket(request)
    key = cache_key(cache_test_request())
    await (await NatsKVCache.create(client, bucket=bucket)).put(key, cache_test_response())
    # Another replica starting with the same settings, then one with a different TTL.
    again = await NatsKVCache.create(client, bucket=bucket)
    other_ttl = await NatsKVCache.create(client, bucket=bucket, ttl_s=60)
    assert await again.get(key) == cache_test_response()
    assert await other_ttl.get(key) == cache_test_response()
    status = await (await client.jetstream().key_value(bucket)).status()
    assert status.ttl == DEFAULT_TTL_S  # bound as it was, not reconfigured


async def test_a_cache_binds_its_bucket_on_first_use(
    client: Client, request: pytest.FixtureRequest
) -> None:
    cache = NatsKVCache(client.jetstream(), bucket=fresh_bucket(request))
    assert await cache.get("0" * 64) is None


@pytest.mark.parametrize(
    "stored",
    [b"not json", b"\xff\xfe", b"[]", b'{"v": 99}', b'{"v": 1, "text": "x"}'],
)
async def test_an_unreadable_value_is_a_logged_miss(
    client: Client,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    stored: bytes,
) -> None:
    cache = await NatsKVCache.create(client, bucket=fresh_bucket(request))
    key = cache_key(cache_test_request())
    await (await client.jetstream().key_value(cache.bucket)).put(key, stored)
    with caplog.at_level(logging.WARNING, logger="dspex_runtime.kv_cache"):
        assert await cache.get(key) is None
    assert "unreadable" in caplog.text
    await cache.put(key, cache_test_response())  # the next answer repairs the entry
    assert await cache.get(key) == cache_test_response()


@pytest.mark.unit
def test_values_are_compact_json_that_rejects_wrong_types() -> None:
    encoded = encode_response(cache_test_response())
    assert b" " not in encoded
    assert decode_response(encoded) == cache_test_response()
    retyped = encoded.replace(b'"cached":false', b'"cached":0')
    with pytest.raises(ValueError, match="malformed"):
        decode_response(retyped)
    with pytest.raises(ValueError, match="malformed"):
        decode_response(encoded.replace(b"[1,0,10,2,", b"[true,0,10,2,"))


async def test_two_clients_share_answers_through_one_bucket(
    nats_server_module: NatsServer,  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    calls: list[str] = []

    async def transport(request: LMRequest, endpoint: Endpoint, timeout_s: float) -> RawCompletion:
        calls.append(request.model)
        return RawCompletion("Paris", request.model, 12, 3, "stop", 0.002)

    bucket = fresh_bucket(request)
    # Two replicas: separate connections, separate cache objects, one bucket.
    first_nc, second_nc = (
        await nats.connect(nats_server_module.url),
        await nats.connect(nats_server_module.url),
    )
    try:
        first = LMClient(
            cache=await NatsKVCache.create(first_nc, bucket=bucket), transport=transport
        )
        second = LMClient(cache=NatsKVCache(second_nc, bucket=bucket), transport=transport)
        paid = await first.complete(cache_test_request())
        served = await second.complete(cache_test_request())
    finally:
        await first_nc.close()
        await second_nc.close()
    assert calls == ["openai/sim-base"]
    assert (paid.cached, served.cached) == (False, True)
    assert served.text == paid.text == "Paris"
    assert served.finish_reason == "stop"
    assert second.usage.cached_calls == 1
    assert served.usage.cost_usd == 0.0
    assert second.cache_errors == 0
