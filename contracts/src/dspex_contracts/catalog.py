"""Every event of the public API, and which one a subject carries."""

from __future__ import annotations

from typing import Any

from .envelope import Envelope
from .events.candidate import CandidateProposed, CandidateScored
from .events.deadletter import DeadLettered
from .events.execute import ExecuteCompleted, ExecuteFailed, ExecuteRequested
from .events.optimize import OptimizeRequested
from .events.program import ProgramRegistered, ProgramUpdated
from .events.run import CancelRun, PauseRun, ResumeRun, RunCompleted, RunProgress

EVENTS: tuple[type[Envelope[Any]], ...] = (
    ExecuteRequested,
    ExecuteCompleted,
    ExecuteFailed,
    ProgramRegistered,
    ProgramUpdated,
    OptimizeRequested,
    CandidateProposed,
    CandidateScored,
    RunProgress,
    RunCompleted,
    PauseRun,
    ResumeRun,
    CancelRun,
    DeadLettered,
)

_BY_SUBJECT: dict[str, type[Envelope[Any]]] = {event.SUBJECT: event for event in EVENTS}


def event_for_subject(subject: str) -> type[Envelope[Any]]:
    """The event model published on ``subject``; KeyError names the served subjects."""
    try:
        return _BY_SUBJECT[subject]
    except KeyError:
        raise KeyError(
            f"no event is published on {subject!r}; served subjects: {sorted(_BY_SUBJECT)}"
        ) from None
