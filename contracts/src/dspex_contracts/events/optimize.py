"""OptimizeRequested: a client asks for an optimization run. The optimizer that holds the
message owns the run; its seed and settings make the run replayable after a crash."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from .. import subjects
from ..common import (
    MAX_KEYS,
    MAX_NAME,
    TOKEN_PATTERN,
    DatasetRef,
    LMSettings,
    MetricName,
    ProgramSource,
    RunEvent,
    RunScoped,
)
from ..envelope import Strict


class Budget(Strict):
    """Limits of a run; the run stops with status ``budget_exhausted`` at the first one
    reached. Omitted limits do not apply."""

    max_lm_calls: int | None = Field(
        default=None, ge=1, description="Most LM calls (cache hits included).", examples=[5000]
    )
    max_cost_usd: float | None = Field(
        default=None,
        gt=0.0,
        allow_inf_nan=False,
        description="Most money spent on LM calls, in US dollars.",
        examples=[2.5],
    )
    max_wall_s: float | None = Field(
        default=None,
        gt=0.0,
        allow_inf_nan=False,
        description="Longest wall-clock time, in seconds, pauses excluded.",
        examples=[3600.0],
    )


class EvaluationSettings(Strict):
    """How the run's candidate evaluations are spread over evaluator replicas."""

    batch_size: int = Field(
        default=32,
        ge=1,
        le=10_000,
        description="Most examples in one CandidateProposed.",
        examples=[32],
    )
    concurrency: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Most CandidateProposed of this run in flight; omitted for the "
        "optimizer's default.",
        examples=[16],
    )


class OptimizeRequestedPayload(RunScoped):
    """What to optimize, on which data, by which metric and strategy, within which budget."""

    program: ProgramSource = Field(description="The program whose variable space is searched.")
    trainset: DatasetRef = Field(description="Examples the strategy learns from (demos, ...).")
    valset: DatasetRef | None = Field(
        default=None,
        description="Held-out examples candidates are scored on; omitted to score on the trainset.",
    )
    metric: MetricName
    strategy: str = Field(
        min_length=1,
        max_length=100,
        pattern=TOKEN_PATTERN,
        description="Optimizer strategy by name.",
        examples=["bootstrap", "simba", "mipro", "beacon"],
    )
    strategy_params: dict[str, Any] = Field(
        default_factory=dict,
        max_length=MAX_KEYS,
        description="Strategy-specific settings; the strategy validates them.",
        examples=[{"max_demos": 4, "num_candidates": 8}],
    )
    seed: int = Field(
        default=0,
        ge=0,
        le=2**32 - 1,
        description="Seed of every random choice of the run; the same seed and the same "
        "recorded results replay the run exactly.",
        examples=[7],
    )
    budget: Budget = Field(default_factory=Budget, description="Limits of the run.")
    lm: LMSettings = Field(
        default_factory=LMSettings, description="Model settings of the program's LM calls."
    )
    proposer_lm: LMSettings | None = Field(
        default=None,
        description="Model settings of the strategy's own calls (instruction proposals, "
        "introspection); omitted to use 'lm'.",
    )
    apply: bool = Field(
        default=False,
        description="Register the best configuration as a new program version when the run "
        "completes, if it beats the baseline.",
    )
    evaluation: EvaluationSettings = Field(
        default_factory=EvaluationSettings, description="How candidates are evaluated."
    )
    requested_by: str | None = Field(
        default=None,
        max_length=MAX_NAME,
        description="Who asked for the run (user or system), for the audit log.",
        examples=["ci-nightly"],
    )


class OptimizeRequested(RunEvent[OptimizeRequestedPayload]):
    """Start an optimization run. The optimizer replica holding this message owns the run;
    when it dies, JetStream redelivers the message and another replica replays the run."""

    TYPE: ClassVar[str] = "OptimizeRequested"
    SUBJECT: ClassVar[str] = subjects.OPTIMIZE_REQUESTED
