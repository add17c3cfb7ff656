"""DSPEx's public API: versioned event models, their subjects and streams. Imports only
pydantic, so that any system can depend on it."""

from . import subjects
from .catalog import EVENTS, event_for_subject
from .common import (
    DatasetRef,
    ErrorInfo,
    LMSettings,
    ProgramRef,
    ProgramSource,
    RunEvent,
    RunScoped,
    UsageInfo,
    dataset_id,
)
from .compat import breaking_changes
from .envelope import Envelope, Strict, new_id
from .events.candidate import (
    CandidateProposed,
    CandidateProposedPayload,
    CandidateScored,
    CandidateScoredPayload,
    ExampleScore,
    call_id_for,
    scored_id_for,
)
from .events.deadletter import DeadLettered, DeadLetteredPayload
from .events.execute import (
    ExecuteCompleted,
    ExecuteCompletedPayload,
    ExecuteFailed,
    ExecuteFailedPayload,
    ExecuteRequested,
    ExecuteRequestedPayload,
)
from .events.optimize import (
    Budget,
    EvaluationSettings,
    OptimizeRequested,
    OptimizeRequestedPayload,
)
from .events.program import (
    ProgramRegistered,
    ProgramRegisteredPayload,
    ProgramUpdated,
    ProgramUpdatedPayload,
)
from .events.run import (
    TERMINAL_STATUSES,
    CancelRun,
    CancelRunPayload,
    PauseRun,
    PauseRunPayload,
    ResumeRun,
    ResumeRunPayload,
    RunCompleted,
    RunCompletedPayload,
    RunProgress,
    RunProgressPayload,
    RunStatus,
)

__all__ = [
    "EVENTS",
    "TERMINAL_STATUSES",
    "Budget",
    "CancelRun",
    "CancelRunPayload",
    "CandidateProposed",
    "CandidateProposedPayload",
    "CandidateScored",
    "CandidateScoredPayload",
    "DatasetRef",
    "DeadLettered",
    "DeadLetteredPayload",
    "Envelope",
    "ErrorInfo",
    "EvaluationSettings",
    "ExampleScore",
    "ExecuteCompleted",
    "ExecuteCompletedPayload",
    "ExecuteFailed",
    "ExecuteFailedPayload",
    "ExecuteRequested",
    "ExecuteRequestedPayload",
    "LMSettings",
    "OptimizeRequested",
    "OptimizeRequestedPayload",
    "PauseRun",
    "PauseRunPayload",
    "ProgramRef",
    "ProgramRegistered",
    "ProgramRegisteredPayload",
    "ProgramSource",
    "ProgramUpdated",
    "ProgramUpdatedPayload",
    "ResumeRun",
    "ResumeRunPayload",
    "RunCompleted",
    "RunCompletedPayload",
    "RunEvent",
    "RunProgress",
    "RunProgressPayload",
    "RunScoped",
    "RunStatus",
    "Strict",
    "UsageInfo",
    "breaking_changes",
    "call_id_for",
    "dataset_id",
    "event_for_subject",
    "new_id",
    "scored_id_for",
    "subjects",
]
