"""The registry's store port: program versions, runs, candidates and datasets. One shared
test class checks every implementation against the invariants below."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dspex_contracts import (
    OptimizeRequestedPayload,
    RunCompletedPayload,
    RunProgressPayload,
    RunStatus,
)

from .records import (
    CandidateRecord,
    DatasetRecord,
    ProgramSummary,
    ProgramVersion,
    ProgressPoint,
    RunRecord,
)


class RegistryStore(ABC):
    """Where the registry keeps what it knows.

    Invariants every implementation keeps:

    - Versions of a program are 1, 2, 3, ... with no gap; :meth:`add_program` gives the next
      one atomically, also when several registry replicas add versions of one name at once.
    - Everything is idempotent on a key, so a redelivered message changes nothing: a
      program version on its ``origin``, a candidate on its ``call_id``, a dataset on its
      ``id``; run events merge as :mod:`dspex_registry.domain.runs` says; a progress
      point on (run, status, evaluations, LM calls).
    - Reads return frozen values that share nothing with the store: mutating a returned
      ``spec`` or ``budget`` changes nothing stored.
    - Times are timezone-aware UTC; a missing thing is ``None`` (or an empty list), never an
      exception.
    """

    # -- programs -----------------------------------------------------------------------

    @abstractmethod
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
        """Store ``spec`` as the next version of ``name`` (its ``version`` key set to that
        number) and return it with True; if ``origin`` was already recorded, return that
        version with False and store nothing."""

    @abstractmethod
    async def get_program(self, name: str, version: int | None = None) -> ProgramVersion | None:
        """The given version, or the latest when ``version`` is None."""

    @abstractmethod
    async def list_programs(self) -> list[ProgramSummary]:
        """Every program with its latest version, by name."""

    @abstractmethod
    async def program_versions(self, name: str) -> list[ProgramVersion]:
        """Every version of ``name``, oldest first."""

    # -- runs ---------------------------------------------------------------------------

    @abstractmethod
    async def record_requested(self, payload: OptimizeRequestedPayload, at: datetime) -> None:
        """Merge a run request into its run (created when unknown)."""

    @abstractmethod
    async def record_progress(self, payload: RunProgressPayload, at: datetime) -> None:
        """Merge a progress report into its run, unless it is stale, and add its point to
        the run's history (a late report is still history)."""

    @abstractmethod
    async def record_completed(self, payload: RunCompletedPayload, at: datetime) -> RunRecord:
        """Merge a completion into its run, add its point to the history, return the run."""

    @abstractmethod
    async def run_history(self, run_id: str, *, limit: int = 5000) -> list[ProgressPoint]:
        """The run's progress points, by LM calls then time (the first ``limit``)."""

    @abstractmethod
    async def set_applied_version(self, run_id: str, version: int) -> None:
        """Note the program version registered from the run (no-op for an unknown run)."""

    @abstractmethod
    async def get_run(self, run_id: str) -> RunRecord | None: ...

    @abstractmethod
    async def list_runs(
        self, *, status: RunStatus | None = None, program: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """Runs, newest first (by ``created_at``, then ``run_id``), optionally filtered."""

    # -- candidates and datasets --------------------------------------------------------

    @abstractmethod
    async def add_candidate(self, candidate: CandidateRecord) -> bool:
        """Record a scored call; False (and nothing stored) when its call id is known."""

    @abstractmethod
    async def run_candidates(self, run_id: str, *, limit: int = 1000) -> list[CandidateRecord]:
        """The run's scored calls, oldest first (by ``created_at``, then ``call_id``)."""

    @abstractmethod
    async def record_dataset(self, dataset_id: str, count: int | None, at: datetime) -> None:
        """Note a dataset id; the first sighting's time stays, a count fills a missing one."""

    @abstractmethod
    async def get_dataset(self, dataset_id: str) -> DatasetRecord | None: ...

    async def close(self) -> None:  # noqa: B027 - most stores hold nothing to release
        """Release connections; the store is not used afterwards."""
