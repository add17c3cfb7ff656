"""Executing a program once: ExecuteRequested in, ExecuteCompleted or ExecuteFailed out."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from .. import subjects
from ..common import ErrorInfo, ProgramRef, ProgramSource, UsageInfo
from ..envelope import Envelope, Strict


class ExecuteRequestedPayload(Strict):
    program: ProgramSource = Field(description="The program to run.")
    inputs: dict[str, Any] = Field(
        description="Values of the program's input fields.",
        examples=[{"question": "What is 6 times 7?"}],
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Configuration overrides: variable names or '<stage>.<key>' paths.",
        examples=[{"temperature": 0.2}],
    )
    want_trace: bool = Field(default=False, description="Return the per-stage trace.")


class ExecuteRequested(Envelope[ExecuteRequestedPayload]):
    """Run a program once on the given inputs."""

    TYPE: ClassVar[str] = "ExecuteRequested"
    SUBJECT: ClassVar[str] = subjects.EXEC_REQUESTED


class ExecuteCompletedPayload(Strict):
    request_id: str = Field(description="Id of the ExecuteRequested this answers.")
    program: ProgramRef = Field(description="The program (and version) that ran.")
    outputs: dict[str, Any] = Field(
        description="The last stage's outputs.", examples=[{"answer": 42}]
    )
    usage: UsageInfo = Field(description="LM usage of this execution.")
    latency_s: float = Field(ge=0, description="Execution time in seconds.")
    trace: list[dict[str, Any]] | None = Field(
        default=None, description="Per-stage trace, when requested."
    )


class ExecuteCompleted(Envelope[ExecuteCompletedPayload]):
    """A program ran to completion."""

    TYPE: ClassVar[str] = "ExecuteCompleted"
    SUBJECT: ClassVar[str] = subjects.EXEC_COMPLETED


class ExecuteFailedPayload(Strict):
    request_id: str = Field(description="Id of the ExecuteRequested this answers.")
    program: ProgramRef | None = Field(default=None, description="The program, if known.")
    error: ErrorInfo = Field(description="Why the execution failed.")


class ExecuteFailed(Envelope[ExecuteFailedPayload]):
    """A program could not run or failed while running."""

    TYPE: ClassVar[str] = "ExecuteFailed"
    SUBJECT: ClassVar[str] = subjects.EXEC_FAILED
