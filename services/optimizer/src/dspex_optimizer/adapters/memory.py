"""In-memory :class:`~dspex_optimizer.ports.RunStore` for tests: the same behaviour as the KV
one within one process (the shared contract tests run against both)."""

from __future__ import annotations

import asyncio

from dspex_contracts import CandidateScoredPayload
from dspex_kernel.optimize import CallLog, InMemoryCallLog

from ..handlers import supersedes
from ..ports import (
    ControlCommand,
    ControlState,
    RunControl,
    RunStore,
    ScoredResults,
)

__all__ = ["InMemoryRunStore"]


class _Scores(ScoredResults):
    def __init__(self, store: InMemoryRunStore, run_id: str) -> None:
        self._store = store
        self.run_id = run_id

    async def get(self, call: int, batch: int) -> CandidateScoredPayload | None:
        raw = self._store.scored.get((self.run_id, call, batch))
        return CandidateScoredPayload.model_validate_json(raw) if raw is not None else None

    async def wait(self, call: int, batch: int) -> CandidateScoredPayload:
        while True:
            found = await self.get(call, batch)
            if found is not None:
                return found
            async with self._store.changed:
                await self._store.changed.wait()

    async def close(self) -> None:
        pass


class _Control(RunControl):
    def __init__(self, store: InMemoryRunStore, run_id: str) -> None:
        self._store = store
        self.run_id = run_id

    async def __call__(self) -> ControlState:
        return self._store.state_of(self.run_id)

    async def close(self) -> None:
        pass


class InMemoryRunStore(RunStore):
    def __init__(self) -> None:
        self.logs: dict[str, InMemoryCallLog] = {}
        self.claims: dict[str, str] = {}
        self.scored: dict[tuple[str, int, int], bytes] = {}
        self.commands: dict[str, ControlCommand] = {}
        self.changed = asyncio.Condition()

    def state_of(self, run_id: str) -> ControlState:
        command = self.commands.get(run_id)
        return command.state if command is not None else "run"

    def log(self, run_id: str) -> CallLog:
        return self.logs.setdefault(run_id, InMemoryCallLog())

    async def claim(self, run_id: str, request_id: str) -> bool:
        return self.claims.setdefault(run_id, request_id) == request_id

    async def scores(self, run_id: str) -> ScoredResults:
        return _Scores(self, run_id)

    async def control(self, run_id: str) -> RunControl:
        return _Control(self, run_id)

    async def record_scored(self, run_id: str, call: int, batch: int, scored: bytes) -> None:
        self.scored[(run_id, call, batch)] = scored
        async with self.changed:
            self.changed.notify_all()

    async def command(self, run_id: str, command: ControlCommand) -> ControlState:
        current = self.commands.get(run_id)
        if current is None or supersedes(command, current):
            self.commands[run_id] = current = command
        return current.state
