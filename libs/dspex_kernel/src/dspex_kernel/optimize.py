"""Optimization runs: the durable-by-replay :class:`Runner` and its ports (call log,
evaluate and LM backends, control, budget), plus ``optimize()`` — a whole run in process,
with ``evaluate`` bound to the kernel's own :func:`~dspex_kernel.evaluate`."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from .evaluate import evaluate as evaluate_program
from .lm import LMRequest, LMResponse
from .metrics import Metric
from .program import ProgramSpec
from .runtime import Runtime
from .strategies._base import Evaluation, ExampleOutcome, Split, Strategy
from .strategies._log import CallLog, InMemoryCallLog
from .strategies._records import (
    evaluation_from_record,
    evaluation_to_record,
    lm_response_from_record,
    lm_response_to_record,
)
from .strategies._run_types import (
    Budget,
    Control,
    Decision,
    EvaluateBackend,
    LMBackend,
    ReplayMismatchError,
    RunOutcome,
    RunState,
    RunStatus,
)
from .strategies._runner import Runner

Example = Mapping[str, Any]


async def optimize(
    spec: ProgramSpec,
    trainset: Sequence[Example],
    valset: Sequence[Example],
    metric: Metric | str,
    *,
    runtime: Runtime,
    strategy: str | Strategy = "bootstrap",
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    budget: Budget = Budget(),  # noqa: B008 - frozen, shared safely
    concurrency: int = 16,
    log: CallLog | None = None,
    on_progress: Callable[[RunState], Awaitable[None]] | None = None,
    control: Control | None = None,
) -> RunOutcome:
    """Search ``spec``'s configurations with ``strategy`` and return the best found.
    Pass a ``log`` to make the run resumable: a later call with the same log, arguments
    and seed replays the recorded answers and carries on where this one stopped."""
    datasets = {"train": list(trainset), "val": list(valset)}

    async def evaluate_backend(
        call: int,
        overrides: Mapping[str, Any],
        split: Split,
        indices: tuple[int, ...],
        want_traces: bool,
    ) -> Evaluation:
        subset = [datasets[split][i] for i in indices]
        report = await evaluate_program(
            spec,
            subset,
            metric,
            runtime=runtime,
            overrides=overrides,
            concurrency=concurrency,
            want_traces=want_traces,
        )
        outcomes = tuple(
            ExampleOutcome(
                index=indices[r.index],  # back to the split's own numbering
                score=r.score,
                outputs=r.outputs,
                error=r.error,
                trace=tuple(t.to_dict() for t in r.trace),
            )
            for r in report.results
        )
        score, usage = report.score, report.usage
        return Evaluation(call, dict(overrides), split, indices, score, outcomes, usage)

    async def lm_backend(call: int, request: LMRequest) -> LMResponse:
        if not request.model and runtime.model:
            request = dataclasses.replace(request, model=runtime.model)
        return await runtime.lm.complete(request)

    runner = Runner(
        spec,
        datasets["train"],
        datasets["val"],
        strategy=strategy,
        seed=seed,
        params=params,
        budget=budget,
        log=log if log is not None else InMemoryCallLog(),
        evaluate=evaluate_backend,
        lm=lm_backend,
        on_progress=on_progress,
        control=control,
    )
    return await runner.run()


__all__ = [
    "Budget",
    "CallLog",
    "Control",
    "Decision",
    "EvaluateBackend",
    "InMemoryCallLog",
    "LMBackend",
    "ReplayMismatchError",
    "RunOutcome",
    "RunState",
    "RunStatus",
    "Runner",
    "evaluation_from_record",
    "evaluation_to_record",
    "lm_response_from_record",
    "lm_response_to_record",
    "optimize",
]
