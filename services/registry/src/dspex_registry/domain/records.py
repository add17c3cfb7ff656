"""The values a registry store returns: frozen dataclasses, never database rows. Times are
timezone-aware UTC; JSON fields are plain dicts that belong to the caller."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dspex_contracts import RunStatus


@dataclass(frozen=True)
class ProgramVersion:
    """One version of a program. ``origin`` names what created it (a registration event or a
    run) and is unique: recording the same origin twice returns the first version."""

    name: str
    version: int
    spec: dict[str, Any]
    created_at: datetime
    origin: str
    run_id: str | None = None
    score: float | None = None
    source: str | None = None
    registered_by: str | None = None


@dataclass(frozen=True)
class ProgramSummary:
    name: str
    latest_version: int
    versions: int
    updated_at: datetime
    score: float | None = None


@dataclass(frozen=True)
class RunRecord:
    """A run as the registry knows it: the request, the latest progress, the outcome.
    ``progress_at`` is the time of the last progress event applied, so that an older one
    arriving late is ignored."""

    run_id: str
    status: RunStatus
    created_at: datetime
    program_name: str | None = None
    program_version: int | None = None
    inline_spec: dict[str, Any] | None = None
    strategy: str | None = None
    metric: str | None = None
    seed: int | None = None
    budget: dict[str, Any] | None = None
    apply: bool = False
    trainset_id: str | None = None
    valset_id: str | None = None
    requested_by: str | None = None
    stop_reason: str | None = None
    baseline_score: float | None = None
    best_score: float | None = None
    best_candidate_id: str | None = None
    best_assignment: dict[str, Any] | None = None
    best_overrides: dict[str, Any] | None = None
    evaluations: int = 0
    lm_calls: int = 0
    cached_calls: int = 0
    cost_usd: float = 0.0
    message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress_at: datetime | None = None
    wall_s: float | None = None
    applied_version: int | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class CandidateRecord:
    """One scored evaluation call; ``call_id`` is unique, so a redelivery records nothing."""

    call_id: str
    run_id: str
    candidate_id: str
    score: float
    examples: int
    created_at: datetime
    lm_calls: int = 0
    cached_calls: int = 0
    cost_usd: float = 0.0
    latency_s: float | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class ProgressPoint:
    """A run's state at one progress report or at its completion: the history the score
    curve is drawn from. Unique on (run, status, evaluations, LM calls), so that a report
    published again (a redelivery, a replayed run) adds no point."""

    run_id: str
    status: RunStatus
    evaluations: int
    lm_calls: int
    at: datetime
    best_score: float | None = None
    cost_usd: float = 0.0


@dataclass(frozen=True)
class DatasetRecord:
    id: str
    count: int | None
    created_at: datetime
