"""Models shared by several events: program references, usage and errors."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from .envelope import Strict

MAX_NAME = 128


class ProgramRef(Strict):
    """A registered program; ``version`` omitted means its latest version."""

    name: str = Field(
        min_length=1,
        max_length=MAX_NAME,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
        description="Registered program name.",
        examples=["math_qa"],
    )
    version: int | None = Field(
        default=None, ge=1, description="Program version; omitted for the latest.", examples=[3]
    )


class ProgramSource(Strict):
    """Which program to run: a registered one by reference, or an inline ProgramSpec."""

    ref: ProgramRef | None = Field(default=None, description="A registered program.")
    spec: dict[str, Any] | None = Field(
        default=None,
        description="An inline ProgramSpec (JSON form), used as it is.",
        examples=[
            {
                "name": "qa",
                "stages": [
                    {"name": "answer", "module": "predict", "signature": "question -> answer"}
                ],
            }
        ],
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ProgramSource:
        if (self.ref is None) == (self.spec is None):
            raise ValueError("give exactly one of 'ref' (a registered program) or 'spec'")
        return self


class UsageInfo(Strict):
    """What LM calls cost."""

    calls: int = Field(default=0, ge=0, description="LM calls made (cache hits included).")
    cached_calls: int = Field(default=0, ge=0, description="Calls served from the cache.")
    prompt_tokens: int = Field(default=0, ge=0, description="Prompt tokens.")
    completion_tokens: int = Field(default=0, ge=0, description="Completion tokens.")
    cost_usd: float = Field(default=0.0, ge=0.0, description="Cost in US dollars.")


class ErrorInfo(Strict):
    """Why something failed, with a stable machine-readable code."""

    code: str = Field(max_length=100, description="Stable error code.", examples=["invalid_input"])
    message: str = Field(
        max_length=4000,
        description="Human-readable explanation.",
        examples=["program 'qa' needs input fields ['question']"],
    )
    retryable: bool = Field(default=False, description="Whether trying again may succeed.")
