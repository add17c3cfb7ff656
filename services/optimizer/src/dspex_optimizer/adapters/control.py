"""Pause, resume and cancel in the KV bucket ``dspex_run_control`` (key: the run id). Commands
are written with compare-and-set, so that whichever replica handles them, in whatever
order, the latest command wins and a cancel is final; the owner of the run watches its key."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import datetime

from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from ..handlers import supersedes
from ..ports import ControlCommand, ControlState, RunControl

__all__ = ["KVRunControl", "decode_command", "encode_command", "write_command"]

_log = logging.getLogger(__name__)
_STATES: tuple[ControlState, ...] = ("run", "pause", "cancel")
_ATTEMPTS = 20


def encode_command(command: ControlCommand) -> bytes:
    value = {"state": command.state, "at": command.at.isoformat(), "event": command.event_id}
    return json.dumps(value, separators=(",", ":")).encode()


def decode_command(data: bytes | None) -> ControlCommand | None:
    if not data:
        return None
    try:
        value = json.loads(data)
        state = value["state"]
        if state not in _STATES:
            raise ValueError(f"unknown state {state!r}")
        return ControlCommand(state, datetime.fromisoformat(value["at"]), str(value["event"]))
    except (ValueError, KeyError, TypeError) as e:
        _log.warning("unreadable run control value %r: %s", data[:200], e)
        return None


async def write_command(kv: KeyValue, run_id: str, command: ControlCommand) -> ControlState:
    """Store ``command`` for ``run_id`` unless the stored one supersedes it (compare and
    set, retried on a concurrent write); returns the state in force afterwards."""
    for _ in range(_ATTEMPTS):
        try:
            entry = await kv.get(run_id)
        except (KeyNotFoundError, KeyDeletedError):
            entry = None
        current = decode_command(entry.value) if entry is not None else None
        if current is not None and not supersedes(command, current):
            return current.state
        try:
            if entry is None:
                await kv.create(run_id, encode_command(command))
            else:
                await kv.update(run_id, encode_command(command), last=entry.revision)
        except KeyWrongLastSequenceError:
            continue  # another replica wrote first: decide again against its command
        return command.state
    raise RuntimeError(f"could not store the command of run {run_id}: too much contention")


class KVRunControl(RunControl):
    """The state of one run, kept current by a watch of its key."""

    def __init__(self, kv: KeyValue, run_id: str) -> None:
        self._kv = kv
        self.run_id = run_id
        self.state: ControlState = "run"
        self._watcher: KeyValue.KeyWatcher | None = None
        self._pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            entry = await self._kv.get(self.run_id)
        except (KeyNotFoundError, KeyDeletedError):
            entry = None
        command = decode_command(entry.value) if entry is not None else None
        self.state = command.state if command is not None else "run"
        self._watcher = await self._kv.watch(self.run_id)
        self._pump = asyncio.create_task(self._drain(self._watcher))

    async def _drain(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is None:
                continue
            command = decode_command(entry.value) if entry.operation is None else None
            self.state = command.state if command is not None else "run"

    async def __call__(self) -> ControlState:
        return self.state

    async def close(self) -> None:
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()  # type: ignore[no-untyped-call]
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
