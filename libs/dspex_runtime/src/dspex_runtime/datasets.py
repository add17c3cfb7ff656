"""Datasets by content hash: examples stored once in the NATS Object Store bucket
``dspex_datasets`` under their ``dataset_id`` and read back by every evaluator replica, so
that events carry a short reference instead of thousands of examples."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.object_store import ObjectStore

from dspex_contracts import DatasetRef, dataset_id
from dspex_kernel.errors import DSPExError

__all__ = [
    "DATASET_BUCKET",
    "DatasetError",
    "DatasetNotFound",
    "DatasetUnavailable",
    "clear_cache",
    "load_dataset",
    "put_dataset",
]

_log = logging.getLogger(__name__)

DATASET_BUCKET = "dspex_datasets"
CACHE_SIZE = 16
# A read whose chunks never arrive (e.g. purged while being replaced) must not hang a worker.
READ_TIMEOUT_S = 30.0


class DatasetNotFound(DSPExError):
    """No dataset with this id was uploaded (or its bucket does not exist)."""

    code = "unknown_dataset"
    status = 404


class DatasetError(DSPExError):
    """The stored object is not the dataset its id names: not a JSON list of objects, or
    a body whose hash or size differs from the reference."""

    code = "invalid_dataset"
    status = 422


class DatasetUnavailable(DSPExError):
    """The object store did not answer in time; trying again may succeed."""

    code = "dataset_unavailable"
    status = 503
    retryable = True


# Content-addressed entries never go stale, so a plain LRU by id is all the cache needs.
_cache: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
# Concurrent first reads of one id share a single fetch (keyed by loop: tests run many).
_inflight: dict[tuple[int, str], asyncio.Task[list[dict[str, Any]]]] = {}


def clear_cache() -> None:
    """Forget every cached dataset (tests; a process never needs it)."""
    _cache.clear()


def _jetstream(js: JetStreamContext | Client) -> JetStreamContext:
    return js.jetstream() if isinstance(js, Client) else js


def canonical_body(examples: Sequence[dict[str, Any]]) -> bytes:
    """The stored form: the canonical JSON that ``dataset_id`` hashes."""
    text = json.dumps(list(examples), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode()


async def _bucket(js: JetStreamContext) -> ObjectStore:
    config = ObjectStoreConfig(
        bucket=DATASET_BUCKET,
        description="DSPEx datasets by content hash",
        storage=StorageType.FILE,
    )
    try:
        # An identical configuration is accepted, so every producer may create it.
        return await js.create_object_store(DATASET_BUCKET, config=config)
    except BadRequestError as e:
        _log.warning("dataset bucket exists with another configuration: %s", e)
        return await js.object_store(DATASET_BUCKET)


async def put_dataset(
    js: JetStreamContext | Client, examples: Sequence[dict[str, Any]]
) -> DatasetRef:
    """Upload ``examples`` (unless that dataset is already stored) and return its
    reference ``DatasetRef(id=dataset_id(examples), count=len(examples))``."""
    if not examples or not all(isinstance(e, dict) for e in examples):
        raise DatasetError("a dataset is a non-empty list of JSON objects")
    ref = DatasetRef(id=dataset_id(examples), count=len(examples))
    assert ref.id is not None
    store = await _bucket(_jetstream(js))
    try:
        await store.get_info(ref.id)
    except NotFoundError:
        await store.put(ref.id, canonical_body(examples))
    return ref


async def load_dataset(js: JetStreamContext | Client, ref: DatasetRef) -> list[dict[str, Any]]:
    """The examples ``ref`` names: inline ones as they are, others from the object store
    (cached per process). Callers must not mutate the returned list: it is shared.

    Raises :class:`DatasetNotFound`, :class:`DatasetError` or, when the store does not
    answer, the retryable :class:`DatasetUnavailable`."""
    if ref.examples is not None:
        return ref.examples
    assert ref.id is not None  # the contract guarantees exactly one of the two
    examples = _cache.get(ref.id)
    if examples is None:
        examples = await _fetch_once(_jetstream(js), ref.id)
    else:
        _cache.move_to_end(ref.id)
    if ref.count is not None and ref.count != len(examples):
        raise DatasetError(f"dataset {ref.id} has {len(examples)} examples, not {ref.count}")
    return examples


async def _fetch_once(js: JetStreamContext, name: str) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    key = (id(loop), name)
    task = _inflight.get(key)
    if task is None:
        task = loop.create_task(_fetch(js, name))
        _inflight[key] = task
        task.add_done_callback(lambda _: _inflight.pop(key, None))
    # Shielded: one waiter giving up must not cancel the read the others wait for.
    return await asyncio.shield(task)


async def _fetch(js: JetStreamContext, name: str) -> list[dict[str, Any]]:
    try:
        store = await js.object_store(DATASET_BUCKET)
        result = await asyncio.wait_for(store.get(name), READ_TIMEOUT_S)
    except NotFoundError as e:  # no bucket, or no such object in it
        raise DatasetNotFound(f"no dataset {name} has been uploaded") from e
    except TimeoutError as e:
        raise DatasetUnavailable(f"reading dataset {name} timed out") from e
    examples = _parse(name, result.data or b"")
    _cache[name] = examples
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return examples


def _parse(name: str, body: bytes) -> list[dict[str, Any]]:
    try:
        examples = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"dataset {name} is not JSON: {e}") from e
    if not isinstance(examples, list) or not all(isinstance(e, dict) for e in examples):
        raise DatasetError(f"dataset {name} is not a list of JSON objects")
    if dataset_id(examples) != name:
        raise DatasetError(f"the stored body of dataset {name} does not match its id")
    return examples
