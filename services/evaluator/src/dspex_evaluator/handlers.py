"""The evaluator's business rules as plain functions: resolve the proposal's program, data
and metric, build the candidate's configuration, evaluate it on the chosen examples, and say
what happened as a CandidateScored. No broker here; the app wires these to subjects."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dspex_contracts import (
    CandidateProposed,
    CandidateScored,
    CandidateScoredPayload,
    DatasetRef,
    ErrorInfo,
    ExampleScore,
    LMSettings,
    UsageInfo,
)
from dspex_kernel import (
    DSPExError,
    EvaluationReport,
    ExampleResult,
    InputError,
    Metric,
    ProgramSpec,
    Runtime,
    Usage,
    evaluate,
)
from dspex_runtime.errors import Retry
from dspex_runtime.programs import ProgramStore

# A proposal naming something this deployment does not have is answered (so the optimizer
# is not left waiting) and also dead-lettered, for an operator to see.
DEAD_LETTER_CODES = frozenset({"unknown_program", "unknown_dataset", "unknown_metric"})
_MAX_ERROR = 4000


@dataclass(frozen=True)
class Scoring:
    """What scoring a proposal needs, injected by the composition root (fakes in tests)."""

    programs: ProgramStore
    load_dataset: Callable[[DatasetRef], Awaitable[Sequence[Mapping[str, Any]]]]
    metric: Callable[[str], Metric]
    runtime_for: Callable[[LMSettings], Runtime]
    example_concurrency: int = 16


async def score_proposal(
    event: CandidateProposed, scoring: Scoring, *, retry_transient: bool = True
) -> CandidateScored:
    """Evaluate the proposed candidate. Anything that fails the whole call becomes a
    CandidateScored with ``error``; a transient failure (the registry or the store not
    answering, every example failing with a retryable LM error) is raised for redelivery
    while ``retry_transient`` — the last delivery answers instead. Failed examples score 0
    and carry their error."""
    started = time.perf_counter()
    payload = event.payload
    try:
        metric = scoring.metric(payload.metric)
        spec = await scoring.programs.resolve(payload.program)
        dataset = await scoring.load_dataset(payload.dataset)
        examples = select(dataset, payload.example_indices)
        report = await evaluate(
            spec,
            examples,
            metric,
            runtime=scoring.runtime_for(payload.lm),
            overrides=candidate_overrides(spec, payload.assignment, payload.overrides, payload.lm),
            concurrency=scoring.example_concurrency,
            want_traces=payload.want_traces,
        )
    except DSPExError as e:
        if e.retryable and retry_transient:
            raise
        return failed(event, e, time.perf_counter() - started)
    if retry_transient and _all_failed_transiently(report):
        # An LM outage would otherwise score a good candidate 0: better late than wrong.
        raise Retry(f"all {report.n} examples failed with retryable LM errors")
    return scored(event, report, time.perf_counter() - started)


def select(dataset: Sequence[Mapping[str, Any]], indices: Sequence[int]) -> list[Any]:
    """The examples at ``indices``, in that order."""
    beyond = [i for i in indices if i >= len(dataset)]
    if beyond:
        raise InputError(
            f"example indices {beyond[:10]} are beyond the dataset's {len(dataset)} examples"
        )
    return [dataset[i] for i in indices]


def candidate_overrides(
    spec: ProgramSpec,
    assignment: Mapping[str, Any],
    overrides: Mapping[str, Any],
    lm: LMSettings,
) -> dict[str, Any]:
    """The candidate's configuration overrides: the assignment mapped through the variable
    space (checked, conditions included), then the overrides, which win; then the event's
    temperature for all stages unless the candidate sets one for all stages itself."""
    merged: dict[str, Any] = spec.variables.to_overrides(assignment) if assignment else {}
    merged.update(overrides)
    if lm.temperature is not None and "*.temperature" not in _paths(spec, merged):
        merged["*.temperature"] = lm.temperature
    return merged


def _paths(spec: ProgramSpec, overrides: Mapping[str, Any]) -> set[str]:
    names = {v.name: v.target for v in spec.variables.variables}
    return {names.get(key, key) for key in overrides}


def _all_failed_transiently(report: EvaluationReport) -> bool:
    return bool(report.results) and all(
        r.error is not None and r.error.get("retryable") is True for r in report.results
    )


def scored(event: CandidateProposed, report: EvaluationReport, latency_s: float) -> CandidateScored:
    """The answer to ``event``: one result per requested example, under the example's index
    in the dataset. Its id derives from the call id, so a re-scored call is a duplicate."""
    indices = event.payload.example_indices
    results = [example_score(indices[r.index], r) for r in report.results]
    return _answer(event, results, _unit(report.score), report.usage, latency_s, None)


def failed(event: CandidateProposed, error: DSPExError, latency_s: float = 0.0) -> CandidateScored:
    """The answer to a call that failed as a whole: no results, score 0, the error."""
    info = ErrorInfo(code=error.code, message=error.message[:_MAX_ERROR], retryable=error.retryable)
    return _answer(event, [], 0.0, Usage(), latency_s, info)


def dead_letter_reason(answer: CandidateScored) -> str | None:
    """Why the proposal behind ``answer`` should also be dead-lettered, if it should."""
    error = answer.payload.error
    return error.code if error is not None and error.code in DEAD_LETTER_CODES else None


def example_score(index: int, result: ExampleResult) -> ExampleScore:
    error = result.error
    return ExampleScore(
        index=index,
        score=_unit(result.score),
        outputs=result.outputs,
        error=None
        if error is None
        else ErrorInfo(
            code=str(error.get("code", "error")),
            message=str(error.get("message", ""))[:_MAX_ERROR],
            retryable=bool(error.get("retryable", False)),
        ),
        usage=usage_info(result.usage),
        latency_s=max(0.0, result.latency_s),
        trace=[t.to_dict() for t in result.trace] if result.trace else None,
    )


def usage_info(usage: Usage) -> UsageInfo:
    return UsageInfo(
        calls=usage.calls,
        cached_calls=usage.cached_calls,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=max(0.0, usage.cost_usd),
    )


def _unit(score: float) -> float:
    # A mean of scores in [0, 1] can stray past 1 by a rounding error; the contract cannot.
    return min(1.0, max(0.0, score))


def _answer(
    event: CandidateProposed,
    results: list[ExampleScore],
    score: float,
    usage: Usage,
    latency_s: float,
    error: ErrorInfo | None,
) -> CandidateScored:
    payload = event.payload
    return CandidateScored.create(
        CandidateScoredPayload(
            run_id=payload.run_id,
            call_id=payload.call_id,
            candidate_id=payload.candidate_id,
            results=results,
            score=score,
            usage=usage_info(usage),
            latency_s=max(0.0, latency_s),
            error=error,
        ),
        causation=event,
    )
