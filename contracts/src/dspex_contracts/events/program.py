"""The program registry's events: a spec submitted for registration (ProgramRegistered)
and a new version made current (ProgramUpdated)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from .. import subjects
from ..common import MAX_KEYS, MAX_NAME, MAX_TEXT, NAME_PATTERN, RunId, Score
from ..envelope import Envelope, Strict

_SPEC_EXAMPLE = {
    "name": "math_qa",
    "stages": [{"name": "answer", "module": "predict", "signature": "question -> answer"}],
}


class ProgramRegisteredPayload(Strict):
    """A program spec submitted for registration."""

    spec: dict[str, Any] = Field(
        max_length=MAX_KEYS,
        description="The ProgramSpec, JSON form (name, stages, configuration, variables); "
        "the registry validates it and assigns the next version of its name.",
        examples=[_SPEC_EXAMPLE],
    )
    source: str | None = Field(
        default=None,
        max_length=MAX_TEXT,
        description="Where the spec came from (a file, a tool, a DSPy program), for the audit log.",
        examples=["examples/math_qa/program.yaml"],
    )
    registered_by: str | None = Field(
        default=None,
        max_length=MAX_NAME,
        description="Who registered it (user or system), for the audit log.",
        examples=["alice"],
    )


class ProgramRegistered(Envelope[ProgramRegisteredPayload]):
    """Register a program (or a new version of one); the registry stores it and answers
    with ProgramUpdated."""

    TYPE: ClassVar[str] = "ProgramRegistered"
    SUBJECT: ClassVar[str] = subjects.PROGRAM_REGISTERED


class ProgramUpdatedPayload(Strict):
    """A program's new current version."""

    name: str = Field(
        min_length=1,
        max_length=MAX_NAME,
        pattern=NAME_PATTERN,
        description="Program name.",
        examples=["math_qa"],
    )
    version: int = Field(ge=1, description="The new version.", examples=[4])
    spec: dict[str, Any] = Field(
        max_length=MAX_KEYS,
        description="The full ProgramSpec of this version, JSON form.",
        examples=[_SPEC_EXAMPLE],
    )
    previous_version: int | None = Field(
        default=None,
        ge=1,
        description="The version it replaces; omitted for a new program.",
        examples=[3],
    )
    run_id: RunId | None = Field(
        default=None, description="The optimization run that produced it, if any."
    )
    score: Score | None = Field(
        default=None, description="The score that earned it (the run's best), if known."
    )


class ProgramUpdated(Envelope[ProgramUpdatedPayload]):
    """A program has a new current version; kernel replicas serve it from now on."""

    TYPE: ClassVar[str] = "ProgramUpdated"
    SUBJECT: ClassVar[str] = subjects.PROGRAM_UPDATED
