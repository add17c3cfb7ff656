"""An in-memory :class:`RegistryStore`, for tests and for trying the service without a
database. Same invariants as the SQL store; nothing survives the process."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from dspex_contracts import (
    OptimizeRequestedPayload,
    RunCompletedPayload,
    RunProgressPayload,
    RunStatus,
)

from ..domain import runs
from ..domain.records import (
    CandidateRecord,
    DatasetRecord,
    ProgramSummary,
    ProgramVersion,
    ProgressPoint,
    RunRecord,
)
from ..domain.store import RegistryStore

T = TypeVar("T")


class InMemoryRegistryStore(RegistryStore):
    def __init__(self) -> None:
        self._programs: dict[str, list[ProgramVersion]] = {}
        self._origins: dict[str, ProgramVersion] = {}
        self._runs: dict[str, RunRecord] = {}
        self._candidates: dict[str, CandidateRecord] = {}
        self._datasets: dict[str, DatasetRecord] = {}
        self._history: dict[tuple[str, str, int, int], ProgressPoint] = {}
        # Run merges read then write; no await between them today, but keep them atomic.
        self._lock = asyncio.Lock()

    async def add_program(
        self,
        name: str,
        spec: Mapping[str, Any],
        *,
        origin: str,
        at: datetime,
        run_id: str | None = None,
        score: float | None = None,
        source: str | None = None,
        registered_by: str | None = None,
    ) -> tuple[ProgramVersion, bool]:
        async with self._lock:
            known = self._origins.get(origin)
            if known is not None:
                return _copy(known), False
            versions = self._programs.setdefault(name, [])
            number = len(versions) + 1
            stored = ProgramVersion(
                name=name,
                version=number,
                spec={**copy.deepcopy(dict(spec)), "version": number},
                created_at=at,
                origin=origin,
                run_id=run_id,
                score=score,
                source=source,
                registered_by=registered_by,
            )
            versions.append(stored)
            self._origins[origin] = stored
            return _copy(stored), True

    async def get_program(self, name: str, version: int | None = None) -> ProgramVersion | None:
        versions = self._programs.get(name, [])
        if not versions:
            return None
        if version is None:
            return _copy(versions[-1])
        return _copy(versions[version - 1]) if 1 <= version <= len(versions) else None

    async def list_programs(self) -> list[ProgramSummary]:
        return [
            ProgramSummary(
                name=name,
                latest_version=versions[-1].version,
                versions=len(versions),
                updated_at=versions[-1].created_at,
                score=versions[-1].score,
            )
            for name, versions in sorted(self._programs.items())
            if versions
        ]

    async def program_versions(self, name: str) -> list[ProgramVersion]:
        return [_copy(v) for v in self._programs.get(name, [])]

    async def record_requested(self, payload: OptimizeRequestedPayload, at: datetime) -> None:
        async with self._lock:
            existing = self._runs.get(payload.run_id)
            self._runs[payload.run_id] = _copy(runs.requested(existing, payload, at))

    async def record_progress(self, payload: RunProgressPayload, at: datetime) -> None:
        async with self._lock:
            merged = runs.progressed(self._runs.get(payload.run_id), payload, at)
            if merged is not None:
                self._runs[payload.run_id] = _copy(merged)
            self._add_point(runs.progress_point(payload, at))

    async def record_completed(self, payload: RunCompletedPayload, at: datetime) -> RunRecord:
        async with self._lock:
            merged = _copy(runs.completed(self._runs.get(payload.run_id), payload, at))
            self._runs[payload.run_id] = merged
            self._add_point(runs.completion_point(payload, at))
            return _copy(merged)

    def _add_point(self, point: ProgressPoint) -> None:
        key = (point.run_id, point.status.value, point.evaluations, point.lm_calls)
        self._history.setdefault(key, point)

    async def run_history(self, run_id: str, *, limit: int = 5000) -> list[ProgressPoint]:
        chosen = [p for p in self._history.values() if p.run_id == run_id]
        chosen.sort(key=lambda p: (p.lm_calls, p.at))
        return chosen[:limit]

    async def set_applied_version(self, run_id: str, version: int) -> None:
        async with self._lock:
            run = self._runs.get(run_id)
            if run is not None:
                self._runs[run_id] = replace(run, applied_version=version)

    async def get_run(self, run_id: str) -> RunRecord | None:
        run = self._runs.get(run_id)
        return _copy(run) if run is not None else None

    async def list_runs(
        self, *, status: RunStatus | None = None, program: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        chosen = [
            r
            for r in self._runs.values()
            if (status is None or r.status == status)
            and (program is None or r.program_name == program)
        ]
        chosen.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
        return [_copy(r) for r in chosen[:limit]]

    async def add_candidate(self, candidate: CandidateRecord) -> bool:
        if candidate.call_id in self._candidates:
            return False
        self._candidates[candidate.call_id] = _copy(candidate)
        return True

    async def run_candidates(self, run_id: str, *, limit: int = 1000) -> list[CandidateRecord]:
        chosen = [c for c in self._candidates.values() if c.run_id == run_id]
        chosen.sort(key=lambda c: (c.created_at, c.call_id))
        return [_copy(c) for c in chosen[:limit]]

    async def record_dataset(self, dataset_id: str, count: int | None, at: datetime) -> None:
        known = self._datasets.get(dataset_id)
        if known is None:
            self._datasets[dataset_id] = DatasetRecord(dataset_id, count, at)
        elif known.count is None and count is not None:
            self._datasets[dataset_id] = replace(known, count=count)

    async def get_dataset(self, dataset_id: str) -> DatasetRecord | None:
        return self._datasets.get(dataset_id)


def _copy(value: T) -> T:
    # Records are frozen but hold dicts: a caller must not reach into the store through them.
    return copy.deepcopy(value)
