"""The SDK's optimization runs: upload datasets, request a run, follow its events (history
included), pause, resume or cancel it, and read what the registry recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from dspex_contracts import (
    Budget,
    CancelRun,
    CancelRunPayload,
    DatasetRef,
    EvaluationSettings,
    LMSettings,
    OptimizeRequested,
    OptimizeRequestedPayload,
    PauseRun,
    PauseRunPayload,
    ResumeRun,
    ResumeRunPayload,
    RunCompleted,
)
from dspex_contracts.rpc import CandidateInfo, RunInfo
from dspex_kernel import DSPExError
from dspex_runtime.datasets import put_dataset

from . import bus
from ._base import ClientBase, ProgramLike, program_source, registry_errors
from .errors import InvalidInput, NotConnected, NotFound, RemoteError, RequestTimeout
from .ids import new_run_id
from .watch import RunEventT, follow_run


class RunsMixin(ClientBase):
    async def upload_dataset(self, examples: Sequence[Mapping[str, Any]]) -> DatasetRef:
        """Store ``examples`` once in the object store; the reference names them by hash."""
        try:
            return await put_dataset(self.js, [dict(e) for e in examples])
        except DSPExError as e:
            raise InvalidInput(e.message) from e

    async def _dataset(self, data: Sequence[Mapping[str, Any]] | DatasetRef) -> DatasetRef:
        return data if isinstance(data, DatasetRef) else await self.upload_dataset(data)

    async def start_optimization(
        self,
        program: ProgramLike,
        trainset: Sequence[Mapping[str, Any]] | DatasetRef,
        valset: Sequence[Mapping[str, Any]] | DatasetRef | None = None,
        *,
        metric: str,
        strategy: str = "bootstrap",
        seed: int = 0,
        params: Mapping[str, Any] | None = None,
        budget: Budget | None = None,
        lm: LMSettings | str | None = None,
        apply: bool = False,
        run_id: str | None = None,
        evaluation: EvaluationSettings | None = None,
        requested_by: str | None = None,
    ) -> str:
        """Upload the datasets (unless references are given), publish OptimizeRequested and
        return the run id."""
        run_id = run_id or new_run_id()
        train_ref = await self._dataset(trainset)
        val_ref = None if valset is None else await self._dataset(valset)
        try:
            payload = OptimizeRequestedPayload(
                run_id=run_id,
                program=program_source(program),
                trainset=train_ref,
                valset=val_ref,
                metric=metric,
                strategy=strategy,
                strategy_params=dict(params or {}),
                seed=seed,
                budget=budget or Budget(),
                lm=LMSettings(model=lm) if isinstance(lm, str) else (lm or LMSettings()),
                apply=apply,
                evaluation=evaluation or EvaluationSettings(),
                requested_by=requested_by,
            )
        except ValidationError as e:
            raise InvalidInput(f"invalid optimization request:\n{bus.validation_message(e)}") from e
        event = OptimizeRequested.create(payload)
        self._started[run_id] = event.occurred_at
        await bus.publish_event(self.js, event)
        return run_id

    async def watch_run(
        self, run_id: str, *, timeout_s: float | None = None
    ) -> AsyncIterator[RunEventT]:
        """The run's RunProgress events, oldest first (history included), then its
        RunCompleted; the iterator ends with the run."""
        since = self._started.get(run_id)
        if since is None:
            try:
                since = (await self.get_run(run_id)).created_at
            except (NotFound, NotConnected, RequestTimeout, RemoteError):
                since = None  # read the stream from its start; slower, never misses
        async for event in follow_run(self.js, run_id, since=since, timeout_s=timeout_s):
            yield event

    async def wait_run(self, run_id: str, *, timeout_s: float | None = None) -> RunCompleted:
        """Wait for the run's end."""
        async for event in self.watch_run(run_id, timeout_s=timeout_s):
            if isinstance(event, RunCompleted):
                return event
        raise RemoteError(f"run {run_id} ended without a RunCompleted")  # pragma: no cover

    async def pause(self, run_id: str, *, reason: str | None = None) -> None:
        event = PauseRun.create(PauseRunPayload(run_id=run_id, reason=reason))
        await bus.publish_event(self.js, event)

    async def resume(self, run_id: str, *, reason: str | None = None) -> None:
        event = ResumeRun.create(ResumeRunPayload(run_id=run_id, reason=reason))
        await bus.publish_event(self.js, event)

    async def cancel(self, run_id: str, *, reason: str | None = None) -> None:
        event = CancelRun.create(CancelRunPayload(run_id=run_id, reason=reason))
        await bus.publish_event(self.js, event)

    async def get_run(self, run_id: str) -> RunInfo:
        async with registry_errors():
            return await self.registry.get_run(run_id)

    async def list_runs(
        self, *, status: str | None = None, program: str | None = None, limit: int = 50
    ) -> list[RunInfo]:
        async with registry_errors():
            return await self.registry.list_runs(status=status, program=program, limit=limit)

    async def run_candidates(self, run_id: str, *, limit: int = 1000) -> list[CandidateInfo]:
        async with registry_errors():
            return await self.registry.run_candidates(run_id, limit=limit)
