"""Models shared by several events: program and dataset references, LM settings, usage,
errors, and the size limits that keep garbage input from growing without bound."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Annotated, Any, Generic, Self, TypeVar

from pydantic import BeforeValidator, Field, model_validator

from .envelope import Envelope, Strict

MAX_NAME = 128
MAX_TEXT = 100_000  # free text (messages, instructions, sources)
MAX_EXAMPLES = 10_000  # examples in a dataset, indices and results in one evaluation
MAX_KEYS = 1_000  # entries in a free-form mapping (specs, assignments, overrides, params)

# Names that may later become NATS subject tokens or KV keys: no dots, wildcards or spaces.
TOKEN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]*$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
DATASET_ID_PATTERN = r"^sha256:[0-9a-f]{64}$"


def _not_an_import_path(value: Any) -> Any:
    # Services must never import code named by a message: say so, not just "bad pattern".
    if isinstance(value, str) and (":" in value or "." in value or "/" in value):
        raise ValueError(
            f"metric {value!r} looks like an import path; give a built-in metric name or "
            "the name of a metric the operator allow-listed"
        )
    return value


RunId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_NAME,
        pattern=TOKEN_PATTERN,
        description="Id of the optimization run, chosen by the client; letters, digits, "
        "'_' and '-' only.",
        examples=["run-42"],
    ),
]

MetricName = Annotated[
    str,
    BeforeValidator(_not_an_import_path),
    Field(
        min_length=1,
        max_length=100,
        pattern=TOKEN_PATTERN,
        description="A built-in metric (exact_match, f1, contains, numeric) or the name of "
        "a metric the operator allow-listed; never an import path.",
        examples=["exact_match"],
    ),
]

Score = Annotated[
    float,
    Field(
        ge=0.0, le=1.0, description="A metric's score, from 0 (worst) to 1 (best).", examples=[0.8]
    ),
]


class ProgramRef(Strict):
    """A registered program; ``version`` omitted means its latest version."""

    name: str = Field(
        min_length=1,
        max_length=MAX_NAME,
        pattern=NAME_PATTERN,
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
        max_length=MAX_KEYS,
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


def dataset_id(examples: Sequence[Any]) -> str:
    """The content hash that names a dataset: SHA-256 of its canonical JSON (sorted keys,
    no spaces, UTF-8), so every producer names the same examples alike."""
    text = json.dumps(list(examples), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class DatasetRef(Strict):
    """Examples to evaluate on: a registered dataset by content hash, or inline examples.
    Exactly one of the two."""

    id: str | None = Field(
        default=None,
        pattern=DATASET_ID_PATTERN,
        description="Content hash of a registered dataset (see dataset_id()).",
        examples=["sha256:" + "0" * 64],
    )
    examples: list[dict[str, Any]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_EXAMPLES,
        description="Inline examples: input fields and labels, one object per example.",
        examples=[[{"question": "What is 6 times 7?", "answer": "42"}]],
    )
    count: int | None = Field(
        default=None,
        ge=1,
        le=MAX_EXAMPLES,
        description="Number of examples, so that indices can be checked without loading a "
        "registered dataset; must match the inline examples when both are given.",
        examples=[200],
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> DatasetRef:
        if (self.id is None) == (self.examples is None):
            raise ValueError("give exactly one of 'id' (a registered dataset) or 'examples'")
        if self.examples is not None and self.count not in (None, len(self.examples)):
            raise ValueError(f"count {self.count} does not match {len(self.examples)} examples")
        return self

    @property
    def size(self) -> int | None:
        """Number of examples, when known."""
        return len(self.examples) if self.examples is not None else self.count


class LMSettings(Strict):
    """Which model a program's LM calls use and how, over its configuration. Endpoints and
    keys are operator configuration and never travel in events."""

    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@+\-]*$",
        description="A litellm model string; omitted to keep the program's own.",
        examples=["openai/gpt-4o-mini"],
    )
    temperature: float | None = Field(
        default=None,
        ge=0.0,
        le=2.0,
        description="Sampling temperature; omitted to keep the program's own.",
        examples=[0.0],
    )


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


class RunScoped(Strict):
    """Base of the payloads that belong to one optimization run."""

    run_id: RunId


R = TypeVar("R", bound=RunScoped)


class RunEvent(Envelope[R], Generic[R]):
    """An event of one optimization run. Its correlation id defaults to the run id, so logs
    and traces group by run; a subclass may derive its envelope id from the payload, so that
    a replayed run republishes the same ids and JetStream drops the duplicates."""

    @classmethod
    def derived_id(cls, payload: R) -> str | None:
        """The envelope id this payload implies, if any."""
        return None

    @classmethod
    def create(
        cls,
        payload: R,
        *,
        id: str | None = None,
        correlation_id: str | None = None,
        causation: Envelope[Any] | None = None,
    ) -> Self:
        """A new event of the run; see ``Envelope.create``."""
        inherited = causation.correlation_id if causation is not None else None
        return super().create(
            payload,
            id=id or cls.derived_id(payload),
            correlation_id=correlation_id or inherited or payload.run_id,
            causation=causation,
        )
