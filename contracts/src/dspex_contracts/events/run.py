"""The life of an optimization run: progress reports, its completion, and the commands
that pause, resume or cancel it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field, model_validator

from .. import subjects
from ..common import (
    MAX_KEYS,
    MAX_TEXT,
    TOKEN_PATTERN,
    ErrorInfo,
    ProgramRef,
    RunEvent,
    RunScoped,
    Score,
    UsageInfo,
)
from .candidate import CandidateId


class RunStatus(StrEnum):
    """Where a run is in its life. The last four are terminal."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    BUDGET_EXHAUSTED = "budget_exhausted"

    @property
    def terminal(self) -> bool:
        """Whether the run is over."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {RunStatus.COMPLETED, RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.BUDGET_EXHAUSTED}
)


class RunProgressPayload(RunScoped):
    """A run's state and best-so-far, as of the event's time."""

    status: RunStatus = Field(description="Where the run is.", examples=["running"])
    strategy: str = Field(
        max_length=100,
        pattern=TOKEN_PATTERN,
        description="The run's strategy.",
        examples=["bootstrap"],
    )
    baseline_score: Score | None = Field(
        default=None, description="Score of the program as registered, once measured."
    )
    best_score: Score | None = Field(default=None, description="Best candidate score so far.")
    best_candidate_id: CandidateId | None = Field(
        default=None, description="The candidate that scored best so far."
    )
    evaluations: int = Field(
        default=0, ge=0, description="Evaluation calls answered so far.", examples=[12]
    )
    lm_calls: int = Field(
        default=0, ge=0, description="LM calls so far (cache hits included).", examples=[960]
    )
    cost_usd: float = Field(default=0.0, ge=0.0, description="Cost so far, in US dollars.")
    elapsed_s: float = Field(
        default=0.0,
        ge=0.0,
        allow_inf_nan=False,
        description="Run time so far, pauses excluded, in seconds.",
    )
    eta_s: float | None = Field(
        default=None,
        ge=0.0,
        allow_inf_nan=False,
        description="Estimated time to completion, in seconds.",
    )
    message: str | None = Field(
        default=None,
        max_length=MAX_TEXT,
        description="What the strategy is doing, for people.",
        examples=["bootstrapping demos: 12 of 32 traces kept"],
    )


class RunProgress(RunEvent[RunProgressPayload]):
    """A run reports its progress: on every status change and periodically while running.
    For the CLI and dashboards; the latest one is the run's state."""

    TYPE: ClassVar[str] = "RunProgress"
    SUBJECT: ClassVar[str] = subjects.RUN_PROGRESS


class RunCompletedPayload(RunScoped):
    """How a run ended and what it found."""

    status: RunStatus = Field(description="The terminal status.", examples=["completed"])
    stop_reason: str | None = Field(
        default=None,
        max_length=100,
        pattern=TOKEN_PATTERN,
        description="Why the run stopped: finished, max_lm_calls, max_cost_usd, max_wall_s, "
        "cancelled, error, ...",
        examples=["finished"],
    )
    program: ProgramRef = Field(description="The program (and version) the run optimized.")
    baseline_score: Score | None = Field(
        default=None, description="Score of the program before optimization."
    )
    best_score: Score | None = Field(default=None, description="Best candidate score.")
    best_candidate_id: CandidateId | None = Field(
        default=None, description="The candidate that scored best."
    )
    best_assignment: dict[str, Any] | None = Field(
        default=None,
        max_length=MAX_KEYS,
        description="Variable values of the best candidate.",
        examples=[{"temperature": 0.3, "answer.num_demos": 4}],
    )
    best_overrides: dict[str, Any] | None = Field(
        default=None,
        max_length=MAX_KEYS,
        description="Configuration overrides of the best candidate (instructions, demos).",
        examples=[{"answer.instructions": "Answer with a number only."}],
    )
    usage: UsageInfo = Field(
        default_factory=UsageInfo, description="LM usage of the whole run, cache hits counted."
    )
    evaluations: int = Field(default=0, ge=0, description="Evaluation calls answered.")
    details: dict[str, Any] | None = Field(
        default=None,
        max_length=MAX_KEYS,
        description="What the strategy reports of its search: trials, steps, and the number "
        "of valset examples its scores (the baseline's too) are on when it narrowed the "
        "valset to fit a budget.",
        examples=[{"trials": 10, "valset_size": 40, "minibatch_size": 14}],
    )
    wall_s: float = Field(
        default=0.0,
        ge=0.0,
        allow_inf_nan=False,
        description="Run time, pauses excluded, in seconds.",
    )
    apply: bool = Field(
        default=False,
        description="The request asked for the best configuration to become a new program version.",
    )
    applied_version: int | None = Field(
        default=None, ge=1, description="The program version registered from this run, if any."
    )
    error: ErrorInfo | None = Field(default=None, description="Why the run failed.")

    @model_validator(mode="after")
    def _terminal(self) -> RunCompletedPayload:
        if not self.status.terminal:
            raise ValueError(
                f"a completed run's status must be one of "
                f"{sorted(s.value for s in TERMINAL_STATUSES)}, got {self.status.value!r}"
            )
        return self


class RunCompleted(RunEvent[RunCompletedPayload]):
    """A run ended (completed, cancelled, failed or out of budget) with its best
    configuration; the registry records it and, when asked to, registers a new version.
    Its id derives from the run id, so a replayed run's completion is stored once."""

    TYPE: ClassVar[str] = "RunCompleted"
    SUBJECT: ClassVar[str] = subjects.RUN_COMPLETED

    @classmethod
    def derived_id(cls, payload: RunCompletedPayload) -> str:
        return f"{payload.run_id}:completed"


class _RunCommand(RunScoped):
    reason: str | None = Field(
        default=None,
        max_length=MAX_TEXT,
        description="Why, for the run's history.",
        examples=["freeing the LM quota for a release"],
    )
    requested_by: str | None = Field(
        default=None,
        max_length=128,
        description="Who asked (user or system), for the audit log.",
        examples=["alice"],
    )


class PauseRunPayload(_RunCommand):
    """Pause a run: the owner stops issuing calls and keeps the run."""


class ResumeRunPayload(_RunCommand):
    """Resume a paused run."""


class CancelRunPayload(_RunCommand):
    """Cancel a run: it ends with status ``cancelled`` and its best-so-far."""


class PauseRun(RunEvent[PauseRunPayload]):
    """Pause a run; the optimizer replica that owns it stops issuing calls."""

    TYPE: ClassVar[str] = "PauseRun"
    SUBJECT: ClassVar[str] = subjects.RUN_PAUSE


class ResumeRun(RunEvent[ResumeRunPayload]):
    """Resume a paused run."""

    TYPE: ClassVar[str] = "ResumeRun"
    SUBJECT: ClassVar[str] = subjects.RUN_RESUME


class CancelRun(RunEvent[CancelRunPayload]):
    """Cancel a run; it completes with status ``cancelled`` and its best-so-far."""

    TYPE: ClassVar[str] = "CancelRun"
    SUBJECT: ClassVar[str] = subjects.RUN_CANCEL
