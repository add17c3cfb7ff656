"""A run's event log in the NATS KV bucket ``dspex_run_log``: the runner's record of call n
under ``<run>.<n>`` (records larger than one NATS message are split into ``<run>.<n>.<i>``
chunks) and the run's header under ``<run>.meta``, which ties a run id to one request."""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BadRequestError, KeyDeletedError, KeyNotFoundError
from nats.js.errors import KeyWrongLastSequenceError as _Taken
from nats.js.kv import KeyValue

from dspex_kernel.optimize import CallLog

__all__ = ["KVCallLog", "claim_run", "open_bucket"]

_MISSING = (KeyNotFoundError, KeyDeletedError)
# Room left in a NATS message for the KV subject and headers beside the value.
_HEADROOM_BYTES = 8 * 1024


async def open_bucket(js: Any, bucket: str, *, ttl_s: float, description: str) -> KeyValue:
    """Create the bucket (file storage, one value per key) or bind to it if it exists."""
    config = KeyValueConfig(
        bucket=bucket,
        history=1,
        ttl=ttl_s or None,
        storage=StorageType.FILE,
        description=description,
    )
    try:
        # An identical configuration is accepted, so replicas starting together all succeed.
        kv: KeyValue = await js.create_key_value(config)
    except BadRequestError:
        # Exists with another configuration (an operator changed the TTL): use it as it is.
        kv = await js.key_value(bucket)
    return kv


def max_value_bytes(nc: Any) -> int:
    """The largest value one KV put can carry on this connection."""
    return max(int(nc.max_payload) - _HEADROOM_BYTES, 1024)


class KVCallLog(CallLog):
    """The :class:`~dspex_kernel.optimize.CallLog` of one run in a KV bucket. The first
    record of a call stays (the key is created, never overwritten), so every replay sees
    the same answer. A large record's chunks are keyed by its digest and written before
    the record's key: a reader that sees the key finds them all, and a losing concurrent
    writer's chunks never mix with the winner's."""

    def __init__(self, kv: KeyValue, run_id: str, *, max_value_bytes: int) -> None:
        self._kv = kv
        self.run_id = run_id
        self._max = max_value_bytes

    def _key(self, n: int) -> str:
        return f"{self.run_id}.{n}"

    async def get(self, n: int) -> dict[str, Any] | None:
        head = await _read(self._kv, self._key(n))
        if head is None:
            return None
        value = json.loads(head)
        if "record" in value:
            record: dict[str, Any] = value["record"]
            return record
        parts = []
        for i in range(int(value["chunks"])):
            part = await _read(self._kv, f"{self._key(n)}.{value['digest']}.{i}")
            if part is None:  # a chunk expired or was purged: the record is gone
                return None
            parts.append(part)
        record = json.loads(b"".join(parts))
        return record

    async def put(self, n: int, record: dict[str, Any]) -> None:
        body = _dumps({"record": record})
        if len(body) > self._max:
            raw = _dumps(record)
            digest = hashlib.sha256(raw).hexdigest()[:32]
            chunks = [raw[i : i + self._max] for i in range(0, len(raw), self._max)]
            for i, chunk in enumerate(chunks):
                await self._kv.put(f"{self._key(n)}.{digest}.{i}", chunk)
            body = _dumps({"chunks": len(chunks), "digest": digest})
        with contextlib.suppress(_Taken):  # recorded already: the first answer stays
            await self._kv.create(self._key(n), body)


async def claim_run(kv: KeyValue, run_id: str, request_id: str) -> bool:
    """Tie ``run_id`` to the request ``request_id``. True when the run is new or already
    belongs to that request (a redelivery); False when another request took the id."""
    key = f"{run_id}.meta"
    try:
        await kv.create(key, _dumps({"request_id": request_id}))
        return True
    except _Taken:
        pass
    stored = await _read(kv, key)
    if stored is None:  # deleted in between: take it again
        await kv.put(key, _dumps({"request_id": request_id}))
        return True
    owner: str = json.loads(stored).get("request_id", "")
    return owner == request_id


async def _read(kv: KeyValue, key: str) -> bytes | None:
    try:
        entry = await kv.get(key)
    except _MISSING:
        return None
    return entry.value or None


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
