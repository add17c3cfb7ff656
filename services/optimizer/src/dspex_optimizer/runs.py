"""One optimization run, from its OptimizeRequested to its RunCompleted: resolve the program
and datasets, then drive the kernel's replaying Runner with the bus as its evaluator, the
run log as its memory and the control bucket as its pause/cancel switch."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from dspex_contracts import (
    OptimizeRequested,
    ProgramRef,
    ProgramSource,
    RunCompleted,
)
from dspex_kernel import LM, DSPExError, ProgramSpec
from dspex_kernel.optimize import Runner, RunOutcome, RunState
from dspex_kernel.strategies import Evaluation, get_strategy
from dspex_runtime.errors import DeadLetter
from dspex_runtime.programs import ProgramStore

from .adapters.datasets import DatasetStore
from .adapters.lm import RunLM
from .evaluations import BusEvaluateBackend, ProposalTemplate
from .handlers import completed_event, failed_event, requested_program
from .metrics import OptimizerMetrics
from .ports import ControlState, Publish, RunControl, RunStore
from .reporting import ProgressReporter, RunGauges
from .settings import OptimizerSettings

__all__ = ["RunDeps", "run_optimization"]

_log = logging.getLogger(__name__)

# How often the owner looks at the run's command while the runner works, and how long it
# lets a cancelled runner end by itself (it does at its next call) before cancelling it.
CONTROL_POLL_S = 0.2
CANCEL_GRACE_S = 1.0


@dataclass
class RunDeps:
    """What a run needs from its replica."""

    settings: OptimizerSettings
    publish: Publish
    programs: ProgramStore
    datasets: DatasetStore
    store: RunStore
    lm: LM
    metrics: OptimizerMetrics | None = None


@dataclass(frozen=True)
class _Prepared:
    spec: ProgramSpec
    trainset: list[dict[str, Any]]
    valset: list[dict[str, Any]]
    template: ProposalTemplate


async def run_optimization(request: OptimizeRequested, deps: RunDeps) -> RunCompleted:
    """Run (or replay and carry on) the requested optimization, publishing its progress
    and its RunCompleted, which is returned. A request whose run id belongs to another
    request raises DeadLetter; a retryable error (registry, datasets or run store away)
    propagates for a redelivery; any other error that keeps the run from starting ends
    it ``failed``."""
    run_id = request.payload.run_id
    if not await deps.store.claim(run_id, request.id):
        raise DeadLetter("run_exists", f"run id {run_id!r} belongs to another OptimizeRequested")
    held = RunGauges(deps.metrics)
    held.move("starting")
    try:
        try:
            prepared = await _prepare(request, deps)
        except DSPExError as e:
            if e.retryable:
                raise
            event = failed_event(request, e, requested_program(request))
            await deps.publish(event)
        else:
            event = await _drive(request, deps, held, prepared)
        done = event.payload
        held.ended(done.status.value, done.stop_reason, done.best_score)
        return event
    finally:
        held.move(None)


async def _prepare(request: OptimizeRequested, deps: RunDeps) -> _Prepared:
    payload = request.payload
    get_strategy(payload.strategy)  # an unknown name fails the run before anything is spent
    spec = await deps.programs.resolve(payload.program)
    train_ref = await deps.datasets.by_id(payload.trainset)
    val_ref = await deps.datasets.by_id(payload.valset) if payload.valset else train_ref
    trainset = await deps.datasets.load(train_ref)
    valset = await deps.datasets.load(val_ref)
    program = (
        ProgramSource(ref=ProgramRef(name=spec.name, version=spec.version))
        if payload.program.ref is not None
        else payload.program
    )
    template = ProposalTemplate(
        request=request,
        program=program,
        datasets={"train": train_ref, "val": val_ref},
        variables=frozenset(v.name for v in spec.variables.variables),
        lm=payload.lm,
        metric=payload.metric,
        batch_size=payload.evaluation.batch_size,
    )
    return _Prepared(spec, trainset, valset, template)


async def _drive(
    request: OptimizeRequested, deps: RunDeps, held: RunGauges, prepared: _Prepared
) -> RunCompleted:
    payload = request.payload
    settings = deps.settings
    log = deps.store.log(payload.run_id)

    def evaluated(evaluation: Evaluation) -> None:
        held.spent(evaluation.usage, evaluation=True)

    scores = await deps.store.scores(payload.run_id)
    control = await deps.store.control(payload.run_id)
    reporter = ProgressReporter(request, deps.publish, held, control)
    try:
        if await log.get(0) is None:
            await reporter.progress(message="started")
        else:
            held.move("running")
        backend = BusEvaluateBackend(
            prepared.template,
            publish=deps.publish,
            scores=scores,
            concurrency=payload.evaluation.concurrency or settings.run_concurrency,
            timeout_s=settings.proposal_timeout_s,
            control=control,
            on_evaluated=evaluated,
        )
        proposer = payload.proposer_lm or payload.lm
        runner = Runner(
            prepared.spec,
            prepared.trainset,
            prepared.valset,
            strategy=payload.strategy,
            seed=payload.seed,
            params=payload.strategy_params,
            budget=reporter.budget,
            log=log,
            evaluate=backend,
            lm=RunLM(
                deps.lm,
                proposer,
                settings.lm_model,
                on_spent=lambda usage: held.spent(usage, evaluation=False),
            ),
            on_progress=reporter.progress,
            control=control,
        )
        outcome = await _run(runner, control, reporter.commanded)
    finally:
        await control.close()
        await scores.close()
    program = ProgramRef(name=prepared.spec.name, version=prepared.spec.version)
    event = completed_event(request, outcome, program, prepared.template.variables)
    await deps.publish(event)
    _log.info(
        "run %s ended %s (%s) after %d evaluations",
        payload.run_id,
        outcome.status,
        outcome.stop_reason,
        outcome.evaluations,
    )
    return event


async def _run(
    runner: Runner,
    control: RunControl,
    commanded: Callable[[ControlState], Awaitable[None]],
) -> RunOutcome:
    """``runner.run()``, watching the run's command meanwhile: ``commanded`` hears of each
    change, and a cancelled run whose strategy waits on calls admitted before the cancel
    (the runner looks at control only when it admits a call) is ended here, with the best
    so far, instead of after those calls."""
    task = asyncio.create_task(runner.run())
    last = await control()
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=CONTROL_POLL_S)
            command = await control()
            if command != last and not task.done():
                last = command
                await commanded(command)
            if not task.done() and command == "cancel":
                await asyncio.wait({task}, timeout=CANCEL_GRACE_S)
                if not task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    return _cancelled(runner.state)
        return task.result()
    finally:
        if not task.done():  # our own caller was cancelled (the replica is stopping)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _cancelled(state: RunState) -> RunOutcome:
    return RunOutcome(
        status="cancelled",
        stop_reason="cancelled",
        best_overrides=state.best_overrides,
        best_score=state.best_score,
        baseline_score=state.baseline_score,
        usage=state.usage,
        evaluations=state.evaluations,
        lm_calls=state.usage.calls,
        cached_calls=state.usage.cached_calls,
        wall_s=state.elapsed_s,
        best_call=state.best_call,
    )
