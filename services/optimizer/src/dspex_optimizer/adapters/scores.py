"""Evaluators' answers in the run log bucket: batch ``k`` of call ``n`` of a run under
``<run>.scored.<n>.<k>``, written by whichever replica consumed the CandidateScored and
watched by the replica that owns the run."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from dspex_contracts import CandidateScoredPayload

from ..ports import ScoredResults

__all__ = ["KVScoredResults", "scored_key"]

_log = logging.getLogger(__name__)

# A watch that silently stopped (e.g. across a reconnect) must not leave a call waiting
# forever: each waiter also reads its key this often.
POLL_S = 15.0


def scored_key(run_id: str, call: int, batch: int) -> str:
    return f"{run_id}.scored.{call}.{batch}"


def _decode(value: bytes | None, key: str) -> CandidateScoredPayload | None:
    if not value:
        return None
    try:
        return CandidateScoredPayload.model_validate_json(value)
    except ValidationError as e:
        _log.warning("unreadable scored result %s: %s", key, e)
        return None


class KVScoredResults(ScoredResults):
    """One KV watch per run resolves the waiters; a periodic read covers a lost watch."""

    def __init__(self, kv: KeyValue, run_id: str, *, poll_s: float = POLL_S) -> None:
        self._kv = kv
        self.run_id = run_id
        self._poll_s = poll_s
        self._waiters: dict[tuple[int, int], asyncio.Future[CandidateScoredPayload]] = {}
        self._watcher: KeyValue.KeyWatcher | None = None
        self._pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._watcher = await self._kv.watch(f"{self.run_id}.scored.>")
        self._pump = asyncio.create_task(self._drain(self._watcher))

    async def _drain(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is None or entry.operation is not None:  # end of history, or a delete
                continue
            parts = entry.key.split(".")
            try:
                where = (int(parts[-2]), int(parts[-1]))
            except (IndexError, ValueError):
                continue
            waiter = self._waiters.get(where)
            if waiter is not None and not waiter.done():
                scored = _decode(entry.value, entry.key)
                if scored is not None:
                    waiter.set_result(scored)

    async def get(self, call: int, batch: int) -> CandidateScoredPayload | None:
        key = scored_key(self.run_id, call, batch)
        try:
            entry = await self._kv.get(key)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        return _decode(entry.value, key)

    async def wait(self, call: int, batch: int) -> CandidateScoredPayload:
        where = (call, batch)
        waiter = self._waiters.get(where)
        if waiter is None:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters[where] = waiter
        try:
            # Registered before this read: an answer written in between reaches the waiter.
            found = await self.get(call, batch)
            while found is None:
                with contextlib.suppress(TimeoutError):
                    return await asyncio.wait_for(asyncio.shield(waiter), self._poll_s)
                found = await self.get(call, batch)
            return found
        finally:
            self._waiters.pop(where, None)

    async def close(self) -> None:
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()  # type: ignore[no-untyped-call]
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
