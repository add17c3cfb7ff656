"""The optimizer's rules as plain functions: ids of calls and candidates, how commands
supersede each other, how evaluators' answers become an Evaluation, and the contract events
a run publishes. No broker here; ``runs.py`` and ``app.py`` wire these up."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dspex_contracts import (
    Budget as BudgetRequest,
)
from dspex_contracts import (
    CancelRun,
    CandidateScoredPayload,
    ErrorInfo,
    OptimizeRequested,
    PauseRun,
    ProgramRef,
    ResumeRun,
    RunCompleted,
    RunCompletedPayload,
    RunProgress,
    RunProgressPayload,
    RunStatus,
    UsageInfo,
    call_id_for,
)
from dspex_kernel import DSPExError, Usage
from dspex_kernel.optimize import Budget, RunOutcome, RunState
from dspex_kernel.strategies import Evaluation, ExampleOutcome, Split

from .ports import ControlCommand, ControlState

# -- ids --------------------------------------------------------------------------------------


def batch_call_id(run_id: str, call: int, batch: int, batches: int) -> str:
    """The call id of batch ``batch`` of the run's ``call``-th evaluation: the plain
    ``call_id_for`` when the call fits in one CandidateProposed, ``<call id>:b<k>`` else."""
    call_id = call_id_for(run_id, call)
    return call_id if batches == 1 else f"{call_id}:b{batch}"


def parse_call_id(run_id: str, call_id: str) -> tuple[int, int] | None:
    """``(call, batch)`` of a call id of ``run_id``, or None when it is not one of ours."""
    prefix = f"{run_id}:"
    if not call_id.startswith(prefix):
        return None
    call, _, batch = call_id[len(prefix) :].partition(":b")
    if not call.isdigit() or (batch and not batch.isdigit()):
        return None
    return int(call), int(batch or 0)


def candidate_id(overrides: Mapping[str, Any]) -> str:
    """A candidate's id within its run: the same configuration always gets the same id."""
    text = json.dumps(dict(overrides), sort_keys=True, separators=(",", ":"), default=str)
    return "c" + hashlib.sha256(text.encode()).hexdigest()[:16]


def split_overrides(
    overrides: Mapping[str, Any], variables: Iterable[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(assignment, overrides): values of the program's variables by name, and the rest
    (``<stage>.<key>`` paths a strategy sets outside the variable space)."""
    names = set(variables)
    assignment = {k: v for k, v in overrides.items() if k in names}
    rest = {k: v for k, v in overrides.items() if k not in names}
    return assignment, rest


def batches_of(indices: Sequence[int], size: int) -> list[tuple[int, ...]]:
    return [tuple(indices[i : i + size]) for i in range(0, len(indices), size)]


# -- commands ---------------------------------------------------------------------------------

_COMMAND_STATES: dict[type[Any], ControlState] = {
    PauseRun: "pause",
    ResumeRun: "run",
    CancelRun: "cancel",
}


def command_of(event: PauseRun | ResumeRun | CancelRun) -> ControlCommand:
    return ControlCommand(_COMMAND_STATES[type(event)], event.occurred_at, event.id)


def supersedes(new: ControlCommand, current: ControlCommand) -> bool:
    """Whether ``new`` replaces the stored ``current``: a cancel is final; otherwise the
    later command wins (ties broken by id, so every replica decides alike)."""
    if current.state == "cancel":
        return False
    if new.state == "cancel":
        return True
    return (new.at, new.event_id) > (current.at, current.event_id)


# -- evaluations ------------------------------------------------------------------------------


def evaluation_from(
    call: int,
    overrides: Mapping[str, Any],
    split: Split,
    answers: Sequence[tuple[tuple[int, ...], CandidateScoredPayload]],
) -> Evaluation:
    """One Evaluation from the scored batches of a call, in the requested order. A batch
    that failed as a whole counts each of its examples as failed (score 0)."""
    outcomes: list[ExampleOutcome] = []
    usage = Usage()
    for indices, scored in answers:
        usage = usage + usage_of(scored.usage)
        by_index = {r.index: r for r in scored.results}
        for index in indices:
            result = by_index.get(index)
            if result is None:
                error = scored.error or ErrorInfo(code="missing_result", message="not scored")
                outcomes.append(ExampleOutcome(index, 0.0, {}, error.model_dump()))
                continue
            outcomes.append(
                ExampleOutcome(
                    index,
                    result.score,
                    result.outputs,
                    result.error.model_dump() if result.error is not None else None,
                    tuple(result.trace or ()),
                )
            )
    indices_all = tuple(i for indices, _ in answers for i in indices)
    score = sum(o.score for o in outcomes) / len(outcomes) if outcomes else 0.0
    return Evaluation(call, dict(overrides), split, indices_all, score, tuple(outcomes), usage)


def usage_of(info: UsageInfo) -> Usage:
    return Usage(
        info.calls, info.cached_calls, info.prompt_tokens, info.completion_tokens, info.cost_usd
    )


def usage_info(usage: Usage) -> UsageInfo:
    return UsageInfo(
        calls=usage.calls,
        cached_calls=usage.cached_calls,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=max(usage.cost_usd, 0.0),
    )


# -- run events -------------------------------------------------------------------------------


def budget_of(request: BudgetRequest) -> Budget:
    return Budget(
        max_lm_calls=request.max_lm_calls,
        max_cost_usd=request.max_cost_usd,
        max_wall_s=request.max_wall_s,
    )


def eta_s(state: RunState, budget: Budget) -> float | None:
    """Time left until the nearest budget, extrapolated from the pace so far; None when no
    budget bounds the run (a strategy's own length is not known in advance)."""
    elapsed = state.elapsed_s
    estimates: list[float] = []
    if budget.max_wall_s is not None:
        estimates.append(budget.max_wall_s - elapsed)
    for used, limit in (
        (state.usage.calls, budget.max_lm_calls),
        (state.usage.cost_usd, budget.max_cost_usd),
    ):
        if limit is not None and used > 0:
            estimates.append(elapsed * (limit - used) / used)
    return max(min(estimates), 0.0) if estimates else None


def _score(value: float | None) -> float | None:
    return None if value is None else min(max(value, 0.0), 1.0)


def progress_event(
    request: OptimizeRequested,
    state: RunState | None,
    status: RunStatus,
    *,
    budget: Budget,
    message: str | None = None,
) -> RunProgress:
    """The run's progress as of ``state`` (None: nothing evaluated yet)."""
    payload = request.payload
    best = state.best_overrides if state is not None else None
    usage = state.usage if state is not None else Usage()
    return RunProgress.create(
        RunProgressPayload(
            run_id=payload.run_id,
            status=status,
            strategy=payload.strategy,
            baseline_score=_score(state.baseline_score) if state is not None else None,
            best_score=_score(state.best_score) if state is not None else None,
            best_candidate_id=candidate_id(best) if best is not None else None,
            evaluations=state.evaluations if state is not None else 0,
            lm_calls=usage.calls,
            cost_usd=max(usage.cost_usd, 0.0),
            elapsed_s=max(state.elapsed_s, 0.0) if state is not None else 0.0,
            eta_s=eta_s(state, budget)
            if state is not None and status is RunStatus.RUNNING
            else None,
            message=message,
        ),
        causation=request,
    )


def completed_event(
    request: OptimizeRequested,
    outcome: RunOutcome,
    program: ProgramRef,
    variables: Iterable[str],
) -> RunCompleted:
    best = outcome.best_overrides
    assignment, overrides = split_overrides(best or {}, variables)
    error = outcome.error
    return RunCompleted.create(
        RunCompletedPayload(
            run_id=request.payload.run_id,
            status=RunStatus(outcome.status),
            stop_reason=outcome.stop_reason,
            program=program,
            baseline_score=_score(outcome.baseline_score),
            best_score=_score(outcome.best_score),
            best_candidate_id=candidate_id(best) if best is not None else None,
            best_assignment=assignment if best is not None else None,
            best_overrides=overrides if best is not None else None,
            usage=usage_info(outcome.usage),
            evaluations=outcome.evaluations,
            details=dict(outcome.details) or None,
            wall_s=max(outcome.wall_s, 0.0),
            apply=request.payload.apply,
            error=_error_info(error) if error is not None else None,
        ),
        causation=request,
    )


def failed_event(
    request: OptimizeRequested, error: DSPExError, program: ProgramRef
) -> RunCompleted:
    """The end of a run that could not start (unknown program, dataset or strategy...)."""
    return RunCompleted.create(
        RunCompletedPayload(
            run_id=request.payload.run_id,
            status=RunStatus.FAILED,
            stop_reason="error",
            program=program,
            apply=request.payload.apply,
            error=ErrorInfo(code=error.code, message=error.message[:4000], retryable=False),
        ),
        causation=request,
    )


def _error_info(error: Mapping[str, Any]) -> ErrorInfo:
    return ErrorInfo(
        code=str(error.get("code", "error"))[:100],
        message=str(error.get("message", ""))[:4000],
        retryable=bool(error.get("retryable", False)),
    )


def requested_program(request: OptimizeRequested) -> ProgramRef:
    """The program a request names, before it is resolved (for a run that cannot start)."""
    source = request.payload.program
    if source.ref is not None:
        return source.ref
    name = (source.spec or {}).get("name")
    try:
        return ProgramRef(name=name) if isinstance(name, str) else ProgramRef(name="inline")
    except ValueError:
        return ProgramRef(name="inline")
