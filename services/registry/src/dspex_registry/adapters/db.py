"""The SQL :class:`RegistryStore` (SQLAlchemy Core, async): SQLite for one machine,
PostgreSQL for many replicas. Rows become frozen records at once; run events merge in one
transaction with the row locked, so replicas never lose each other's updates."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import asdict, fields
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dspex_contracts import (
    OptimizeRequestedPayload,
    RunCompletedPayload,
    RunProgressPayload,
    RunStatus,
)

from ..domain import runs as merges
from ..domain.records import (
    CandidateRecord,
    DatasetRecord,
    ProgramSummary,
    ProgramVersion,
    ProgressPoint,
    RunRecord,
)
from ..domain.store import RegistryStore
from .tables import candidates, datasets, programs, run_progress, runs

R = TypeVar("R")

# A unique-key race with another writer (same version number, same new run row) is retried;
# every round lets at least one writer through.
_ATTEMPTS = 20


class SqlRegistryStore(RegistryStore):
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # SQLite allows one writer; a transaction that reads then writes would fail with
        # "database is locked" beside another one, so this process takes turns instead.
        self._serial = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    async def close(self) -> None:
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        if self._serial is None:
            yield
        else:
            async with self._serial:
                yield

    async def _write(self, work: Callable[[AsyncConnection], Awaitable[R]]) -> R:
        for attempt in range(_ATTEMPTS):
            try:
                async with self._turn(), self.engine.begin() as conn:
                    return await work(conn)
            except IntegrityError:
                if attempt == _ATTEMPTS - 1:
                    raise
                # Jitter, so that the losers of one round do not collide again at once.
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
        raise AssertionError("unreachable")

    # -- programs -----------------------------------------------------------------------

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
        async def work(conn: AsyncConnection) -> tuple[ProgramVersion, bool]:
            known = (
                await conn.execute(select(programs).where(programs.c.origin == origin))
            ).first()
            if known is not None:
                return _program(known), False
            latest = await conn.scalar(
                select(func.max(programs.c.version)).where(programs.c.name == name)
            )
            number = (latest or 0) + 1
            values = {
                "name": name,
                "version": number,
                "spec": {**dict(spec), "version": number},
                "created_at": _utc(at),
                "origin": origin,
                "run_id": run_id,
                "score": score,
                "source": source,
                "registered_by": registered_by,
            }
            # Another replica taking the same number fails the primary key: retried.
            await conn.execute(insert(programs).values(values))
            return _program_from(values), True

        return await self._write(work)

    async def get_program(self, name: str, version: int | None = None) -> ProgramVersion | None:
        query = select(programs).where(programs.c.name == name)
        if version is None:
            query = query.order_by(programs.c.version.desc()).limit(1)
        else:
            query = query.where(programs.c.version == version)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _program(row) if row is not None else None

    async def list_programs(self) -> list[ProgramSummary]:
        latest = (
            select(programs.c.name, func.max(programs.c.version).label("version"))
            .group_by(programs.c.name)
            .subquery()
        )
        query = (
            select(programs.c.name, programs.c.version, programs.c.created_at, programs.c.score)
            .join(
                latest,
                (programs.c.name == latest.c.name) & (programs.c.version == latest.c.version),
            )
            .order_by(programs.c.name)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        # Versions have no gaps, so the latest number is also the count.
        return [
            ProgramSummary(r.name, r.version, r.version, _utc(r.created_at), r.score) for r in rows
        ]

    async def program_versions(self, name: str) -> list[ProgramVersion]:
        query = select(programs).where(programs.c.name == name).order_by(programs.c.version)
        async with self.engine.connect() as conn:
            return [_program(r) for r in (await conn.execute(query)).all()]

    # -- runs ---------------------------------------------------------------------------

    async def _merge_run(
        self,
        run_id: str,
        merge: Callable[[RunRecord | None], RunRecord | None],
        point: ProgressPoint | None = None,
    ) -> RunRecord | None:
        async def work(conn: AsyncConnection) -> RunRecord | None:
            if point is not None:
                await _add_point(conn, point)
            query = select(runs).where(runs.c.run_id == run_id).with_for_update()
            row = (await conn.execute(query)).first()
            existing = _run(row) if row is not None else None
            merged = merge(existing)
            if merged is None:
                return existing
            values = _run_values(merged)
            if existing is None:
                # Two replicas creating the same run: the loser retries and merges.
                await conn.execute(insert(runs).values(values))
            else:
                await conn.execute(update(runs).where(runs.c.run_id == run_id).values(values))
            return merged

        return await self._write(work)

    async def record_requested(self, payload: OptimizeRequestedPayload, at: datetime) -> None:
        await self._merge_run(payload.run_id, lambda r: merges.requested(r, payload, _utc(at)))

    async def record_progress(self, payload: RunProgressPayload, at: datetime) -> None:
        at = _utc(at)
        await self._merge_run(
            payload.run_id,
            lambda r: merges.progressed(r, payload, at),
            merges.progress_point(payload, at),
        )

    async def record_completed(self, payload: RunCompletedPayload, at: datetime) -> RunRecord:
        at = _utc(at)
        merged = await self._merge_run(
            payload.run_id,
            lambda r: merges.completed(r, payload, at),
            merges.completion_point(payload, at),
        )
        assert merged is not None  # a completion always merges
        return merged

    async def set_applied_version(self, run_id: str, version: int) -> None:
        async with self._turn(), self.engine.begin() as conn:
            await conn.execute(
                update(runs).where(runs.c.run_id == run_id).values(applied_version=version)
            )

    async def get_run(self, run_id: str) -> RunRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(runs).where(runs.c.run_id == run_id))).first()
        return _run(row) if row is not None else None

    async def list_runs(
        self, *, status: RunStatus | None = None, program: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        query = select(runs)
        if status is not None:
            query = query.where(runs.c.status == status.value)
        if program is not None:
            query = query.where(runs.c.program_name == program)
        query = query.order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(limit)
        async with self.engine.connect() as conn:
            return [_run(r) for r in (await conn.execute(query)).all()]

    async def run_history(self, run_id: str, *, limit: int = 5000) -> list[ProgressPoint]:
        query = (
            select(run_progress)
            .where(run_progress.c.run_id == run_id)
            .order_by(run_progress.c.lm_calls, run_progress.c.at)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            ProgressPoint(**{**_fixed(r._asdict()), "status": RunStatus(r.status)}) for r in rows
        ]

    # -- candidates and datasets --------------------------------------------------------

    async def add_candidate(self, candidate: CandidateRecord) -> bool:
        async def work(conn: AsyncConnection) -> bool:
            known = await conn.scalar(
                select(candidates.c.call_id).where(candidates.c.call_id == candidate.call_id)
            )
            if known is not None:
                return False
            values = asdict(candidate)
            values["created_at"] = _utc(candidate.created_at)
            await conn.execute(insert(candidates).values(values))
            return True

        return await self._write(work)

    async def run_candidates(self, run_id: str, *, limit: int = 1000) -> list[CandidateRecord]:
        query = (
            select(candidates)
            .where(candidates.c.run_id == run_id)
            .order_by(candidates.c.created_at, candidates.c.call_id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [CandidateRecord(**_fixed(r._asdict())) for r in rows]

    async def record_dataset(self, dataset_id: str, count: int | None, at: datetime) -> None:
        async def work(conn: AsyncConnection) -> None:
            query = select(datasets).where(datasets.c.id == dataset_id).with_for_update()
            known = (await conn.execute(query)).first()
            if known is None:
                values = {"id": dataset_id, "count": count, "created_at": _utc(at)}
                await conn.execute(insert(datasets).values(values))
            elif known._mapping["count"] is None and count is not None:
                await conn.execute(
                    update(datasets).where(datasets.c.id == dataset_id).values(count=count)
                )

        await self._write(work)

    async def get_dataset(self, dataset_id: str) -> DatasetRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(datasets).where(datasets.c.id == dataset_id))).first()
        return DatasetRecord(**_fixed(row._asdict())) if row is not None else None


async def _add_point(conn: AsyncConnection, point: ProgressPoint) -> None:
    """Insert ``point`` unless its key is there (same report again: nothing to add)."""
    key = (
        (run_progress.c.run_id == point.run_id)
        & (run_progress.c.status == point.status.value)
        & (run_progress.c.evaluations == point.evaluations)
        & (run_progress.c.lm_calls == point.lm_calls)
    )
    if await conn.scalar(select(func.count()).select_from(run_progress).where(key)):
        return
    values = {**asdict(point), "status": point.status.value}
    # Two replicas adding one point at once: the loser's transaction is retried.
    await conn.execute(insert(run_progress).values(values))


_RUN_FIELDS = tuple(f.name for f in fields(RunRecord))


def _utc(value: datetime) -> datetime:
    # SQLite keeps no offset: values go in as UTC and come back naive.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _fixed(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _utc(v) if isinstance(v, datetime) else v for k, v in values.items()}


def _program(row: Row[Any]) -> ProgramVersion:
    return _program_from(row._asdict())


def _program_from(values: Mapping[str, Any]) -> ProgramVersion:
    return ProgramVersion(**_fixed(dict(values)))


def _run(row: Row[Any]) -> RunRecord:
    values = _fixed(row._asdict())
    values["status"] = RunStatus(values["status"])
    return RunRecord(**{name: values[name] for name in _RUN_FIELDS})


def _run_values(run: RunRecord) -> dict[str, Any]:
    values = _fixed(asdict(run))
    values["status"] = run.status.value
    return values
