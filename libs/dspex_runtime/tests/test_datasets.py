"""Datasets in the NATS Object Store against a real nats-server: upload once, read back by
id, the per-process cache, and the errors of a missing or corrupt dataset."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import nats
import pytest
from nats.aio.client import Client

from dspex_contracts import DatasetRef, dataset_id
from dspex_runtime import datasets
from dspex_runtime.datasets import (
    DATASET_BUCKET,
    DatasetError,
    DatasetNotFound,
    canonical_body,
    load_dataset,
    put_dataset,
)
from dspex_runtime.testing.fixtures import nats_server_module  # noqa: F401 - a fixture
from dspex_runtime.testing.nats import NatsServer

EXAMPLES = [{"question": f"What is {i} + 1?", "answer": i + 1} for i in range(5)]


def examples_named(tag: str, n: int = 3) -> list[dict[str, Any]]:
    # One server serves the module: each test stores its own datasets.
    return [{"question": f"{tag} {i}", "answer": i} for i in range(n)]


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    datasets.clear_cache()
    yield
    datasets.clear_cache()


@pytest.fixture
async def client(nats_server_module: NatsServer) -> AsyncIterator[Client]:  # noqa: F811
    client = await nats.connect(nats_server_module.url)
    yield client
    await client.close()


@pytest.mark.unit
async def test_inline_examples_are_returned_as_they_are() -> None:
    ref = DatasetRef(examples=EXAMPLES)
    assert await load_dataset(None, ref) is ref.examples  # type: ignore[arg-type]


@pytest.mark.integration
async def test_a_missing_bucket_or_object_is_an_unknown_dataset(client: Client) -> None:
    missing = DatasetRef(id=dataset_id(examples_named("never uploaded")))
    with pytest.raises(DatasetNotFound) as caught:
        await load_dataset(client, missing)  # the bucket may not exist yet
    assert caught.value.code == "unknown_dataset"
    await put_dataset(client, examples_named("something else"))
    with pytest.raises(DatasetNotFound):
        await load_dataset(client, missing)  # the bucket exists, the object does not


@pytest.mark.integration
async def test_put_then_load_by_id(client: Client) -> None:
    examples = examples_named("round trip", 40)
    ref = await put_dataset(client, examples)
    assert ref == DatasetRef(id=dataset_id(examples), count=40)
    assert ref.examples is None
    assert await load_dataset(client.jetstream(), ref) == examples
    assert await load_dataset(client, DatasetRef(id=ref.id)) == examples  # count is optional


@pytest.mark.integration
async def test_put_is_idempotent_and_stores_the_canonical_body(client: Client) -> None:
    examples = examples_named("idempotent")
    first = await put_dataset(client, examples)
    assert first.id is not None
    store = await client.jetstream().object_store(DATASET_BUCKET)
    stored = await store.get_info(first.id)
    again = await put_dataset(client, [dict(reversed(list(e.items()))) for e in examples])
    assert again == first  # key order does not change the content hash
    assert (await store.get_info(first.id)).nuid == stored.nuid  # not uploaded twice
    assert (await store.get(first.id)).data == canonical_body(examples)


@pytest.mark.integration
async def test_loads_are_cached_per_process(client: Client) -> None:
    examples = examples_named("cached")
    ref = await put_dataset(client, examples)
    assert ref.id is not None
    assert await load_dataset(client, ref) == examples
    store = await client.jetstream().object_store(DATASET_BUCKET)
    await store.delete(ref.id)
    assert await load_dataset(client, ref) == examples  # served from the cache
    datasets.clear_cache()
    with pytest.raises(DatasetNotFound):
        await load_dataset(client, ref)


@pytest.mark.integration
async def test_concurrent_first_loads_share_one_read(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = await put_dataset(client, examples_named("concurrent"))
    reads: list[str] = []
    fetch = datasets._fetch

    async def counting_fetch(js: Any, name: str) -> list[dict[str, Any]]:
        reads.append(name)
        return await fetch(js, name)

    monkeypatch.setattr(datasets, "_fetch", counting_fetch)
    loaded = await asyncio.gather(*(load_dataset(client, ref) for _ in range(8)))
    assert all(result == loaded[0] for result in loaded)
    assert reads == [ref.id]


@pytest.mark.integration
async def test_a_count_that_does_not_match_is_refused(client: Client) -> None:
    ref = await put_dataset(client, examples_named("counted", 3))
    with pytest.raises(DatasetError, match="has 3 examples, not 4"):
        await load_dataset(client, DatasetRef(id=ref.id, count=4))


@pytest.mark.integration
async def test_a_body_that_does_not_match_its_id_is_refused(client: Client) -> None:
    await put_dataset(client, examples_named("bucket exists"))
    store = await client.jetstream().object_store(DATASET_BUCKET)
    claimed = dataset_id(examples_named("claimed"))
    await store.put(claimed, canonical_body(examples_named("tampered")))
    with pytest.raises(DatasetError, match="does not match its id"):
        await load_dataset(client, DatasetRef(id=claimed))
    not_json = dataset_id(examples_named("not json"))
    await store.put(not_json, b"{oops")
    with pytest.raises(DatasetError, match="not JSON"):
        await load_dataset(client, DatasetRef(id=not_json))


@pytest.mark.integration
async def test_an_empty_dataset_cannot_be_uploaded(client: Client) -> None:
    with pytest.raises(DatasetError):
        await put_dataset(client, [])
