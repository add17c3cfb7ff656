"""Executing a program once: ExecuteRequested in, ExecuteCompleted or ExecuteFailed out."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from .. import subjects
from ..common import MAX_KEYS, ErrorInfo, ProgramRef, ProgramSource, UsageInfo
from ..envelope import MAX_ID_LENGTH, Envelope, Strict


class ExecuteRequestedPayload(Strict):
    """A program and the inputs to run it on."""

    program: ProgramSource = Field(description="The program to run.")
    inputs: dict[str, Any] = Field(
        max_length=MAX_KEYS,
        description="Values of the program's input fields.",
        examples=[{"question": "What is 6 times 7?"}],
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        max_length=MAX_KEYS,
        description="Configuration overrides: variable names or '<stage>.<key>' paths.",
        examples=[{"temperature": 0.2}],
    )
    want_trace: bool = Field(default=False, description="Return the per-stage trace.")


class ExecuteRequested(Envelope[ExecuteRequestedPayload]):
    """Run a program once on the given inputs."""

    TYPE: ClassVar[str] = "ExecuteRequested"
    SUBJECT: ClassVar[str] = subjects.EXEC_REQUESTED


class ExecuteCompletedPayload(Strict):
    """The outputs of one execution."""

    request_id: str = Field(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="Id of the ExecuteRequested this answers.",
        examples=["0f8b6c1e9d7a4c3b8e2f1a0b9c8d7e6f"],
    )
    program: ProgramRef = Field(description="The program (and version) that ran.")
    outputs: dict[str, Any] = Field(
        description="The last stage's outputs.", examples=[{"answer": 42}]
    )
    usage: UsageInfo = Field(description="LM usage of this execution.")
    latency_s: float = Field(ge=0, description="Execution time in seconds.", examples=[0.84])
    trace: list[dict[str, Any]] | None = Field(
        default=None, description="Per-stage trace, when requested."
    )


class ExecuteCompleted(Envelope[ExecuteCompletedPayload]):
    """A program ran to completion."""

    TYPE: ClassVar[str] = "ExecuteCompleted"
    SUBJECT: ClassVar[str] = subjects.EXEC_COMPLETED


class ExecuteFailedPayload(Strict):
    """Why an execution failed."""

    request_id: str = Field(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="Id of the ExecuteRequested this answers.",
        examples=["0f8b6c1e9d7a4c3b8e2f1a0b9c8d7e6f"],
    )
    program: ProgramRef | None = Field(default=None, description="The program, if known.")
    error: ErrorInfo = Field(description="Why the execution failed.")


class ExecuteFailed(Envelope[ExecuteFailedPayload]):
    """A program could not run or failed while running."""

    TYPE: ClassVar[str] = "ExecuteFailed"
    SUBJECT: ClassVar[str] = subjects.EXEC_FAILED
