"""How each run event changes a run's record, as pure functions shared by every store.
Events of one run arrive on different streams and consumers, so in any order and possibly
twice: each function gives the same record for a repeated event, and a late progress report
never undoes a newer one or a completion."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from dspex_contracts import (
    OptimizeRequestedPayload,
    ProgramSource,
    RunCompletedPayload,
    RunProgressPayload,
    RunStatus,
    dataset_id,
)
from dspex_contracts.common import DatasetRef

from .records import ProgressPoint, RunRecord


def new_run(run_id: str, at: datetime) -> RunRecord:
    return RunRecord(run_id=run_id, status=RunStatus.QUEUED, created_at=at)


def dataset_key(ref: DatasetRef | None) -> tuple[str, int | None] | None:
    """(id, count) of a dataset reference; inline examples are named by their hash."""
    if ref is None:
        return None
    if ref.id is not None:
        return ref.id, ref.count
    assert ref.examples is not None  # the contract guarantees one of the two
    return dataset_id(ref.examples), len(ref.examples)


def _program(source: ProgramSource) -> tuple[str | None, int | None]:
    if source.ref is not None:
        return source.ref.name, source.ref.version
    spec = source.spec or {}
    name, version = spec.get("name"), spec.get("version", 1)
    return (
        name if isinstance(name, str) else None,
        version if isinstance(version, int) else None,
    )


def requested(existing: RunRecord | None, p: OptimizeRequestedPayload, at: datetime) -> RunRecord:
    """The run as requested. Fills in what only the request says and keeps any status that
    progress or completion events already recorded."""
    base = existing or new_run(p.run_id, at)
    name, version = _program(p.program)
    trainset, valset = dataset_key(p.trainset), dataset_key(p.valset)
    return replace(
        base,
        created_at=min(base.created_at, at),
        program_name=base.program_name or name,
        # A completion names the exact version run; the request may only have said "latest".
        program_version=base.program_version if base.program_version is not None else version,
        inline_spec=p.program.spec,
        strategy=p.strategy,
        metric=p.metric,
        seed=p.seed,
        budget=p.budget.model_dump(exclude_none=True),
        apply=p.apply,
        trainset_id=trainset[0] if trainset else None,
        valset_id=valset[0] if valset else None,
        requested_by=p.requested_by,
    )


def progressed(existing: RunRecord | None, p: RunProgressPayload, at: datetime) -> RunRecord | None:
    """The run after a progress report, or None when the report is stale (older than the
    last one applied, or the run is over)."""
    if existing is not None and (
        existing.status.terminal or (existing.progress_at is not None and existing.progress_at > at)
    ):
        return None
    base = existing or new_run(p.run_id, at)
    started = base.started_at
    if started is None and p.status is not RunStatus.QUEUED:
        started = at
    return replace(
        base,
        status=p.status,
        strategy=p.strategy,
        baseline_score=p.baseline_score if p.baseline_score is not None else base.baseline_score,
        best_score=p.best_score if p.best_score is not None else base.best_score,
        best_candidate_id=p.best_candidate_id or base.best_candidate_id,
        evaluations=p.evaluations,
        lm_calls=p.lm_calls,
        cost_usd=p.cost_usd,
        message=p.message,
        wall_s=p.elapsed_s,
        started_at=started,
        progress_at=at,
    )


def completed(existing: RunRecord | None, p: RunCompletedPayload, at: datetime) -> RunRecord:
    """The finished run. A completion is final: later progress reports are ignored."""
    base = existing or new_run(p.run_id, at)
    return replace(
        base,
        status=p.status,
        stop_reason=p.stop_reason,
        program_name=p.program.name,
        program_version=(
            p.program.version if p.program.version is not None else base.program_version
        ),
        baseline_score=p.baseline_score if p.baseline_score is not None else base.baseline_score,
        best_score=p.best_score if p.best_score is not None else base.best_score,
        best_candidate_id=p.best_candidate_id or base.best_candidate_id,
        best_assignment=p.best_assignment,
        best_overrides=p.best_overrides,
        evaluations=p.evaluations,
        lm_calls=p.usage.calls,
        cached_calls=p.usage.cached_calls,
        cost_usd=p.usage.cost_usd,
        wall_s=p.wall_s,
        apply=p.apply or base.apply,
        error=p.error.model_dump() if p.error is not None else None,
        started_at=base.started_at or base.created_at,
        finished_at=at,
    )


def progress_point(p: RunProgressPayload, at: datetime) -> ProgressPoint:
    return ProgressPoint(
        run_id=p.run_id,
        status=p.status,
        evaluations=p.evaluations,
        lm_calls=p.lm_calls,
        at=at,
        best_score=p.best_score,
        cost_usd=p.cost_usd,
    )


def completion_point(p: RunCompletedPayload, at: datetime) -> ProgressPoint:
    return ProgressPoint(
        run_id=p.run_id,
        status=p.status,
        evaluations=p.evaluations,
        lm_calls=p.usage.calls,
        at=at,
        best_score=p.best_score,
        cost_usd=p.usage.cost_usd,
    )
