"""DSPEx's public API: versioned event models, their subjects and streams. Imports only
pydantic, so that any system can depend on it."""

from . import subjects
from .common import ErrorInfo, ProgramRef, ProgramSource, UsageInfo
from .envelope import Envelope, Strict, new_id
from .events.deadletter import DeadLettered, DeadLetteredPayload
from .events.execute import (
    ExecuteCompleted,
    ExecuteCompletedPayload,
    ExecuteFailed,
    ExecuteFailedPayload,
    ExecuteRequested,
    ExecuteRequestedPayload,
)

__all__ = [
    "DeadLettered",
    "DeadLetteredPayload",
    "Envelope",
    "ErrorInfo",
    "ExecuteCompleted",
    "ExecuteCompletedPayload",
    "ExecuteFailed",
    "ExecuteFailedPayload",
    "ExecuteRequested",
    "ExecuteRequestedPayload",
    "ProgramRef",
    "ProgramSource",
    "Strict",
    "UsageInfo",
    "new_id",
    "subjects",
]
