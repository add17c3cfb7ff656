"""The runner's ``evaluate`` over the bus: one call becomes one CandidateProposed per batch
of examples (ids derived from the run and the call number), answered by evaluator replicas;
the answers arrive in the run log, whoever consumed them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dspex_contracts import (
    CandidateProposed,
    CandidateProposedPayload,
    CandidateScoredPayload,
    DatasetRef,
    LMSettings,
    OptimizeRequested,
    ProgramSource,
)
from dspex_kernel.strategies import Evaluation, Split

from .handlers import batch_call_id, batches_of, candidate_id, evaluation_from, split_overrides
from .ports import ControlState, Publish, ScoredResults

__all__ = ["BusEvaluateBackend", "ProposalTemplate"]

_log = logging.getLogger(__name__)

# How often a proposal held back by a pause asks again.
GATE_POLL_S = 0.2


@dataclass(frozen=True)
class ProposalTemplate:
    """What every proposal of a run shares."""

    request: OptimizeRequested
    program: ProgramSource  # pinned to the resolved version, so a new version mid-run is not used
    datasets: Mapping[Split, DatasetRef]  # by id, never inline
    variables: frozenset[str]
    lm: LMSettings
    metric: str
    batch_size: int

    @property
    def run_id(self) -> str:
        return self.request.payload.run_id


class BusEvaluateBackend:
    """``evaluate(call, overrides, split, indices, want_traces)``: publish the proposals of
    the batches not answered yet, wait for every answer (publishing a proposal again after
    ``timeout_s``: a duplicate while JetStream remembers its id, a retry after), and return
    them as one Evaluation. At most ``concurrency`` proposals of the run are in flight, and
    none is published while ``control`` says anything but "run": the runner admitted the
    call before a pause, but its proposals waiting for a slot must not go out during it."""

    def __init__(
        self,
        template: ProposalTemplate,
        *,
        publish: Publish,
        scores: ScoredResults,
        concurrency: int,
        timeout_s: float,
        control: Callable[[], Awaitable[ControlState]] | None = None,
        on_evaluated: Callable[[Evaluation], None] | None = None,
    ) -> None:
        self.template = template
        self._publish = publish
        self._scores = scores
        self._slots = asyncio.Semaphore(concurrency)
        self._timeout_s = timeout_s
        self._control = control
        self._on_evaluated = on_evaluated

    async def __call__(
        self,
        call: int,
        overrides: Mapping[str, Any],
        split: Split,
        indices: tuple[int, ...],
        want_traces: bool,
    ) -> Evaluation:
        batches = batches_of(indices, self.template.batch_size)
        answers = await asyncio.gather(
            *(
                self._batch(call, k, len(batches), batch, overrides, split, want_traces)
                for k, batch in enumerate(batches)
            )
        )
        evaluation = evaluation_from(
            call, overrides, split, list(zip(batches, answers, strict=True))
        )
        if self._on_evaluated is not None:
            self._on_evaluated(evaluation)
        return evaluation

    async def _batch(
        self,
        call: int,
        batch: int,
        batches: int,
        indices: tuple[int, ...],
        overrides: Mapping[str, Any],
        split: Split,
        want_traces: bool,
    ) -> CandidateScoredPayload:
        # An answer recorded before a crash is used as it is: no proposal, no waiting.
        found = await self._scores.get(call, batch)
        if found is not None:
            return found
        proposal = self.proposal(call, batch, batches, indices, overrides, split, want_traces)
        async with self._slots:
            await self._until_running()
            while True:
                await self._publish(proposal)
                with contextlib.suppress(TimeoutError):
                    return await asyncio.wait_for(self._scores.wait(call, batch), self._timeout_s)
                _log.warning(
                    "no score for %s after %.0f s; proposing it again", proposal.id, self._timeout_s
                )

    async def _until_running(self) -> None:
        # Polled: the control is a cached read, and a pause lasts minutes, not milliseconds.
        while True:
            if self._control is None or await self._control() == "run":
                return
            await asyncio.sleep(GATE_POLL_S)

    def proposal(
        self,
        call: int,
        batch: int,
        batches: int,
        indices: tuple[int, ...],
        overrides: Mapping[str, Any],
        split: Split,
        want_traces: bool,
    ) -> CandidateProposed:
        t = self.template
        assignment, rest = split_overrides(overrides, t.variables)
        call_id = batch_call_id(t.run_id, call, batch, batches)
        return CandidateProposed.create(
            CandidateProposedPayload(
                run_id=t.run_id,
                call_id=call_id,
                candidate_id=candidate_id(overrides),
                program=t.program,
                assignment=assignment,
                overrides=rest,
                dataset=t.datasets[split],
                example_indices=list(indices),
                lm=t.lm,
                want_traces=want_traces,
                metric=t.metric,
            ),
            causation=t.request,
        )
