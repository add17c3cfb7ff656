"""One candidate evaluation: the optimizer proposes a configuration on a batch of examples
(CandidateProposed) and an evaluator replica answers with per-example scores
(CandidateScored). Both carry a call id derived from the run and its call number."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Self

from pydantic import Field, model_validator

from .. import subjects
from ..common import (
    MAX_EXAMPLES,
    MAX_KEYS,
    MAX_NAME,
    TOKEN_PATTERN,
    DatasetRef,
    ErrorInfo,
    LMSettings,
    MetricName,
    ProgramSource,
    RunEvent,
    RunScoped,
    Score,
    UsageInfo,
)
from ..envelope import Strict

MAX_CALL_ID = 180  # leaves room for the ':scored' suffix within the envelope id limit

CallId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_CALL_ID,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_:\-]*$",
        description="Id of the evaluation call, derived from the run and its call number "
        "(see call_id_for()); also the CandidateProposed envelope id, so that a replayed "
        "proposal is de-duplicated by JetStream.",
        examples=["run-42:17"],
    ),
]

CandidateId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_NAME,
        pattern=TOKEN_PATTERN,
        description="Id of the candidate configuration within its run; one candidate may "
        "be evaluated in several calls (batches).",
        examples=["c0005"],
    ),
]


def call_id_for(run_id: str, call_number: int) -> str:
    """The id of a run's ``call_number``-th evaluation call: the same on every replay."""
    if call_number < 0:
        raise ValueError("call numbers start at 0")
    return f"{run_id}:{call_number}"


def scored_id_for(call_id: str) -> str:
    """The envelope id of the CandidateScored answering ``call_id``: a redelivered
    proposal that is scored again publishes a duplicate that JetStream drops."""
    return f"{call_id}:scored"


class CandidateProposedPayload(RunScoped):
    """Evaluate one candidate configuration on some examples of a dataset."""

    call_id: CallId
    candidate_id: CandidateId
    program: ProgramSource = Field(description="The program the candidate configures.")
    assignment: dict[str, Any] = Field(
        default_factory=dict,
        max_length=MAX_KEYS,
        description="Value of each variable of the program's variable space, by name.",
        examples=[{"temperature": 0.3, "answer.num_demos": 4}],
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        max_length=MAX_KEYS,
        description="Configuration values by path ('<stage>.<key>'), applied after the "
        "assignment: what a strategy sets outside the variable space (e.g. proposed "
        "instructions, bootstrapped demos).",
        examples=[{"answer.instructions": "Answer with a number only."}],
    )
    dataset: DatasetRef = Field(description="The dataset the examples come from.")
    example_indices: list[Annotated[int, Field(ge=0)]] = Field(
        min_length=1,
        max_length=MAX_EXAMPLES,
        description="Indices of the examples to evaluate, in the dataset's order.",
        examples=[[0, 1, 2, 3]],
    )
    lm: LMSettings = Field(
        default_factory=LMSettings, description="Model settings of the program's LM calls."
    )
    want_traces: bool = Field(
        default=False,
        description="Return each example's per-stage trace (bootstrapping needs them).",
    )
    metric: MetricName

    @model_validator(mode="after")
    def _indices_in_range(self) -> CandidateProposedPayload:
        size = self.dataset.size
        if size is not None and any(i >= size for i in self.example_indices):
            raise ValueError(f"example_indices must be below the dataset's {size} examples")
        return self


class CandidateProposed(RunEvent[CandidateProposedPayload]):
    """Evaluate a candidate configuration; consumed by evaluator replicas sharing one
    durable consumer. The envelope id is the call id."""

    TYPE: ClassVar[str] = "CandidateProposed"
    SUBJECT: ClassVar[str] = subjects.CANDIDATE_PROPOSED

    @classmethod
    def derived_id(cls, payload: CandidateProposedPayload) -> str:
        return payload.call_id

    @model_validator(mode="after")
    def _id_is_call_id(self) -> Self:
        # The call id is what de-duplicates replayed proposals; a random id would not.
        if self.id != self.payload.call_id:
            raise ValueError(
                f"CandidateProposed id {self.id!r} must equal payload.call_id "
                f"{self.payload.call_id!r}"
            )
        return self


class ExampleScore(Strict):
    """The result of one example."""

    index: int = Field(ge=0, description="Index of the example in the dataset.", examples=[3])
    score: Score
    outputs: dict[str, Any] = Field(
        default_factory=dict,
        max_length=MAX_KEYS,
        description="The program's outputs; empty when it failed.",
        examples=[{"answer": "42"}],
    )
    error: ErrorInfo | None = Field(
        default=None, description="Why the example failed (it then scores 0)."
    )
    usage: UsageInfo = Field(default_factory=UsageInfo, description="LM usage of the example.")
    latency_s: float | None = Field(
        default=None, ge=0.0, description="Time the example took, in seconds.", examples=[0.42]
    )
    trace: list[dict[str, Any]] | None = Field(
        default=None,
        max_length=MAX_KEYS,
        description="Per-stage trace (inputs and outputs of each stage), when requested.",
    )


class CandidateScoredPayload(RunScoped):
    """The scores of one evaluation call."""

    call_id: CallId
    candidate_id: CandidateId
    results: list[ExampleScore] = Field(
        default_factory=list,
        max_length=MAX_EXAMPLES,
        description="One result per requested example, in the requested order; empty when "
        "the whole call failed.",
    )
    score: Score = Field(
        description="Mean score over the results (failed examples count 0); 0 when the whole "
        "call failed."
    )
    usage: UsageInfo = Field(default_factory=UsageInfo, description="LM usage of the call.")
    latency_s: float = Field(
        ge=0.0, description="Time the call took in the evaluator, in seconds.", examples=[3.2]
    )
    error: ErrorInfo | None = Field(
        default=None,
        description="Why the whole call failed (e.g. a configuration outside the variable "
        "space); the strategy then treats the candidate as failed.",
    )


class CandidateScored(RunEvent[CandidateScoredPayload]):
    """The scores of a candidate evaluation; consumed by the optimizer that owns the run
    and by the registry (run history). Its id derives from the call id."""

    TYPE: ClassVar[str] = "CandidateScored"
    SUBJECT: ClassVar[str] = subjects.CANDIDATE_SCORED

    @classmethod
    def derived_id(cls, payload: CandidateScoredPayload) -> str:
        return scored_id_for(payload.call_id)
