"""The run handler with fakes (in-memory run store, datasets and programs, an evaluator that
answers from the candidate alone): completion, replay after a crash, pause, cancel,
budgets, batching and runs that cannot start."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from optimizer_helpers import SPEC, MemoryBus, eventually, request

from dspex_contracts import (
    Budget,
    CancelRun,
    CancelRunPayload,
    CandidateProposed,
    DatasetRef,
    OptimizeRequested,
    PauseRun,
    PauseRunPayload,
    ProgramRef,
    ProgramSource,
    ResumeRun,
    ResumeRunPayload,
    RunCompleted,
    RunProgress,
)
from dspex_kernel import ProgramSpec
from dspex_kernel.testing import ScriptedLM
from dspex_optimizer import OptimizerSettings, create_app
from dspex_optimizer.adapters.datasets import InMemoryDatasetStore
from dspex_optimizer.adapters.memory import InMemoryRunStore
from dspex_optimizer.handlers import command_of
from dspex_optimizer.runs import RunDeps, run_optimization
from dspex_runtime.errors import DeadLetter
from dspex_runtime.programs import InMemoryProgramStore
from dspex_runtime.registry_client import RegistryUnavailable

pytestmark = pytest.mark.unit


class Harness:
    def __init__(self, store: InMemoryRunStore | None = None) -> None:
        self.store = store or InMemoryRunStore()
        self.bus = MemoryBus(self.store)
        self.datasets = InMemoryDatasetStore()
        self.deps = RunDeps(
            settings=OptimizerSettings(proposal_timeout_s=60.0),
            publish=self.bus.publish,
            programs=InMemoryProgramStore([ProgramSpec.from_data({**SPEC, "version": 3})]),
            datasets=self.datasets,
            store=self.store,
            lm=ScriptedLM(lambda r: "unused"),
        )

    async def run(self, event: OptimizeRequested) -> RunCompleted:
        return await asyncio.wait_for(run_optimization(event, self.deps), 30)

    async def command(self, event: PauseRun | ResumeRun | CancelRun) -> None:
        await self.store.command(event.payload.run_id, command_of(event))

    def proposals(self) -> list[CandidateProposed]:
        return self.bus.of(CandidateProposed)

    def progress(self) -> list[RunProgress]:
        return self.bus.of(RunProgress)


def result_of(event: RunCompleted) -> tuple[Any, ...]:
    p = event.payload
    return (p.status, p.best_assignment, p.best_overrides, p.best_score, p.evaluations)


async def test_a_run_completes_with_its_best_candidate() -> None:
    h = Harness()
    done = await h.run(request("r1"))
    p = done.payload
    assert done.id == "r1:completed"
    assert (p.status, p.stop_reason) == ("completed", "finished")
    assert p.baseline_score is not None
    assert p.best_score is not None
    assert p.best_score >= p.baseline_score
    assert p.best_assignment
    assert set(p.best_assignment) <= {"temperature", "module"}
    assert p.program == ProgramRef(name="qa", version=1)
    assert p.evaluations == len(h.proposals()) > 1
    assert p.details is not None
    assert p.details["candidates"] == 6  # what the strategy reported of its search
    assert p.usage.calls == 12 * p.evaluations
    assert p.usage.cost_usd == pytest.approx(0.012 * p.evaluations)
    first = h.proposals()[0].payload
    assert [e.id for e in h.proposals()][:2] == ["r1:0", "r1:1"]
    assert first.dataset.id is not None
    assert first.dataset.examples is None
    assert first.dataset.id in h.datasets.datasets
    assert (first.assignment, first.overrides) == ({}, {})
    progress = h.progress()
    assert progress[0].payload.message == "started"
    assert progress[-1].payload.evaluations == p.evaluations
    assert progress[-1].payload.best_score == p.best_score


async def test_a_redelivered_finished_run_replays_without_proposing_again() -> None:
    h = Harness()
    event = request("r2")
    first = await h.run(event)
    proposed = len(h.proposals())
    again = await h.run(event)
    assert len(h.proposals()) == proposed
    assert result_of(again) == result_of(first)
    assert again.id == first.id


async def test_a_run_killed_mid_way_is_replayed_to_the_same_result() -> None:
    reference = await Harness().run(request("ref"))
    h = Harness()
    h.bus.answering = False
    event = request("r3")
    owner = asyncio.create_task(h.run(event))
    await eventually(lambda: len(h.bus.held) >= 1, "the baseline proposal")
    await h.bus.answer(h.bus.held[0])
    await eventually(lambda: len(h.bus.held) >= 5, "candidate proposals")
    # Two candidates were scored and recorded before the owner died; the others are
    # answered while no owner is alive, and must not be proposed again.
    for proposal in h.bus.held[1:3]:
        await h.bus.answer(proposal)
    await eventually(lambda: len(h.store.logs["r3"]) >= 3, "three recorded calls")
    owner.cancel()
    await asyncio.gather(owner, return_exceptions=True)
    await h.bus.answer(h.bus.held[3])  # answered while no owner was alive
    never_answered = {p.id for p in h.bus.held} - set(h.bus.answered)
    h.bus.answering = True
    before = len(h.proposals())
    done = await h.run(event)
    assert result_of(done)[1:] == result_of(reference)[1:]
    assert done.payload.status == "completed"
    # Only what had no answer yet is proposed again (same ids: JetStream duplicates).
    assert {e.id for e in h.proposals()[before:]} == never_answered
    assert len({e.id for e in h.proposals()}) == reference.payload.evaluations


async def test_a_paused_run_proposes_nothing_until_resumed() -> None:
    h = Harness()
    await h.command(PauseRun.create(PauseRunPayload(run_id="r4")))
    owner = asyncio.create_task(h.run(request("r4")))
    await eventually(
        lambda: any(p.payload.status == "paused" for p in h.progress()), "a paused report"
    )
    assert h.proposals() == []
    await h.command(ResumeRun.create(ResumeRunPayload(run_id="r4")))
    done = await owner
    assert done.payload.status == "completed"
    assert h.progress()[-1].payload.status == "running"


async def test_a_cancelled_run_ends_cancelled_with_its_best_so_far() -> None:
    h = Harness()
    h.bus.answering = False
    owner = asyncio.create_task(h.run(request("r5", params={"n_candidates": 6})))
    await eventually(lambda: len(h.bus.held) >= 1, "the baseline proposal")
    await h.command(CancelRun.create(CancelRunPayload(run_id="r5")))
    await h.command(ResumeRun.create(ResumeRunPayload(run_id="r5")))  # too late: final
    await h.bus.release()
    done = await owner
    assert (done.payload.status, done.payload.stop_reason) == ("cancelled", "cancelled")
    assert done.payload.baseline_score is not None
    assert done.payload.best_score == done.payload.baseline_score


async def test_a_run_stops_at_its_lm_call_budget() -> None:
    h = Harness()
    params = {"n_candidates": 6, "minibatch": 4}
    done = await h.run(request("r6", budget=Budget(max_lm_calls=30), params=params))
    p = done.payload
    assert (p.status, p.stop_reason) == ("budget_exhausted", "max_lm_calls")
    assert p.usage.calls >= 30
    assert p.best_score is not None


async def test_large_evaluations_are_split_into_batches() -> None:
    h = Harness()
    done = await h.run(request("r7", batch_size=5, params={"n_candidates": 2}))
    reference = await Harness().run(request("r7", params={"n_candidates": 2}))
    ids = [e.id for e in h.proposals()]
    assert ids[:3] == ["r7:0:b0", "r7:0:b1", "r7:0:b2"]
    assert [len(e.payload.example_indices) for e in h.proposals()[:3]] == [5, 5, 2]
    assert result_of(done) == result_of(reference)


async def test_a_registered_program_is_pinned_to_its_resolved_version() -> None:
    h = Harness()
    done = await h.run(request("r8", program=ProgramSource(ref=ProgramRef(name="qa"))))
    assert done.payload.program == ProgramRef(name="qa", version=3)
    assert all(e.payload.program.ref == done.payload.program for e in h.proposals())


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"program": ProgramSource(ref=ProgramRef(name="nope"))}, "unknown_program"),
        ({"trainset": DatasetRef(id="sha256:" + "0" * 64)}, "unknown_dataset"),
        ({"strategy": "nope"}, "unknown_strategy"),
        ({"program": ProgramSource(spec={"name": "bad", "stages": []})}, "invalid_program"),
    ],
)
async def test_a_run_that_cannot_start_ends_failed(change: dict[str, Any], code: str) -> None:
    h = Harness()
    done = await h.run(request("r9", **change))
    assert done.payload.status == "failed"
    assert done.payload.error is not None
    assert done.payload.error.code == code
    assert h.proposals() == []


async def test_a_run_id_taken_by_another_request_is_dead_lettered() -> None:
    h = Harness()
    await h.run(request("r10"))
    with pytest.raises(DeadLetter) as caught:
        await h.run(request("r10"))
    assert caught.value.reason == "run_exists"


async def test_an_unavailable_registry_is_retried_not_failed() -> None:
    h = Harness()

    class Away(InMemoryProgramStore):
        async def get(self, name: str, version: int | None = None) -> ProgramSpec:
            raise RegistryUnavailable("no registry answered")

    h.deps.programs = Away()
    with pytest.raises(RegistryUnavailable):
        await h.run(request("r11", program=ProgramSource(ref=ProgramRef(name="qa"))))
    assert h.bus.of(RunCompleted) == []


async def test_proposals_queued_before_a_pause_wait_for_the_resume() -> None:
    h = Harness()
    h.bus.answering = False
    owner = asyncio.create_task(h.run(request("r12", concurrency=1)))
    await eventually(lambda: len(h.bus.held) == 1, "the baseline proposal")
    await h.bus.answer(h.bus.held[0])
    await eventually(lambda: len(h.bus.held) == 2, "the first candidate proposal")
    # The runner admitted every candidate already; only one is out (concurrency 1).
    await h.command(PauseRun.create(PauseRunPayload(run_id="r12")))
    await h.bus.answer(h.bus.held[1])
    await asyncio.sleep(0.5)  # time enough for a queued proposal to go out if it could
    assert len(h.proposals()) == 2
    await h.command(ResumeRun.create(ResumeRunPayload(run_id="r12")))
    await h.bus.release()
    done = await owner
    assert done.payload.status == "completed"
    assert len(h.proposals()) == done.payload.evaluations


async def test_a_cancel_ends_a_run_whose_evaluations_never_come_back() -> None:
    h = Harness()
    h.bus.answering = False
    owner = asyncio.create_task(h.run(request("r13")))
    await eventually(lambda: len(h.bus.held) == 1, "the baseline proposal")
    await h.bus.answer(h.bus.held[0])
    await eventually(lambda: len(h.bus.held) > 1, "candidate proposals")
    await h.command(CancelRun.create(CancelRunPayload(run_id="r13")))
    done = await owner  # no evaluator answers the candidates
    assert (done.payload.status, done.payload.stop_reason) == ("cancelled", "cancelled")
    assert done.payload.evaluations == 1
    assert done.payload.best_score == done.payload.baseline_score


async def test_a_proposal_lost_on_the_way_is_proposed_again_with_the_same_id() -> None:
    h = Harness()
    h.deps.settings = OptimizerSettings(proposal_timeout_s=0.1)
    seen: set[str] = set()
    answer_later = h.bus.publish

    async def lose_first_copies(event: Any) -> None:
        if isinstance(event, CandidateProposed) and event.id not in seen:
            seen.add(event.id)  # lost: published, but no evaluator ever gets it
            h.bus.events.append(event)
            return
        await answer_later(event)

    h.deps.publish = lose_first_copies
    done = await h.run(request("r14", params={"n_candidates": 2}))
    assert done.payload.status == "completed"
    ids = Counter(e.id for e in h.proposals())
    assert set(ids.values()) == {2}
    assert len(ids) == done.payload.evaluations


async def test_a_second_delivery_of_a_run_held_here_waits_for_it() -> None:
    h = Harness()
    h.bus.answering = False
    optimizer, _ = create_app(OptimizerSettings())
    optimizer.deps = h.deps
    event = request("r15", params={"n_candidates": 2})
    first = asyncio.create_task(optimizer.run(event))
    await eventually(lambda: len(h.bus.held) == 1, "the baseline proposal")
    second = asyncio.create_task(optimizer.run(event))
    await h.bus.release()
    await asyncio.wait_for(asyncio.gather(first, second), 30)
    assert len(h.bus.of(RunCompleted)) == 1
    assert len({e.id for e in h.proposals()}) == len(h.proposals())
    assert optimizer.active == {}
