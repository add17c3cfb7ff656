"""The store contract: one test class run against every RegistryStore implementation
(in memory, SQLite, and PostgreSQL when DSPEX_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from registry_helpers import completed, progress, requested, scored, spec_data

from dspex_contracts import RunStatus, dataset_id
from dspex_registry.domain import CandidateRecord, ProgressPoint, RegistryStore

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def keys(points: list[ProgressPoint]) -> list[tuple[str, int, int, datetime]]:
    return [(p.status.value, p.evaluations, p.lm_calls, p.at) for p in points]


def candidate(run_id: str, n: int, when: datetime) -> CandidateRecord:
    event = scored(run_id, n, score=n / 10)
    p = event.payload
    return CandidateRecord(
        call_id=p.call_id,
        run_id=run_id,
        candidate_id=p.candidate_id,
        score=p.score,
        examples=3,
        created_at=when,
        lm_calls=p.usage.calls,
        cost_usd=p.usage.cost_usd,
        latency_s=p.latency_s,
        error={"code": "x", "message": "y", "retryable": False} if n == 2 else None,
    )


class TestRegistryStore:
    async def test_versions_are_consecutive_and_carry_their_number(
        self, store: RegistryStore
    ) -> None:
        first, created = await store.add_program("qa", spec_data(), origin="e1", at=at(0))
        assert created
        assert first.version == 1
        assert first.spec["version"] == 1
        second, _ = await store.add_program(
            "qa", {**spec_data(), "version": 9}, origin="e2", at=at(1), registered_by="ann"
        )
        assert second.version == 2
        assert second.spec["version"] == 2
        await store.add_program("other", spec_data("other"), origin="e3", at=at(2))
        latest = await store.get_program("qa")
        assert latest is not None
        assert latest.version == 2
        assert latest.registered_by == "ann"
        one = await store.get_program("qa", 1)
        assert one is not None
        assert one.spec == {**spec_data(), "version": 1}
        assert one.created_at == at(0)
        assert one.created_at.tzinfo is not None
        assert await store.get_program("qa", 3) is None
        assert await store.get_program("nope") is None
        assert [v.version for v in await store.program_versions("qa")] == [1, 2]
        assert await store.program_versions("nope") == []

    async def test_the_same_origin_is_stored_once(self, store: RegistryStore) -> None:
        first, created = await store.add_program("qa", spec_data(), origin="event-1", at=at(0))
        again, created_again = await store.add_program(
            "qa", spec_data(instructions="changed"), origin="event-1", at=at(5)
        )
        assert created
        assert not created_again
        assert again == first
        assert len(await store.program_versions("qa")) == 1

    async def test_concurrent_additions_get_distinct_versions_without_gaps(
        self, store: RegistryStore
    ) -> None:
        added = await asyncio.gather(
            *(store.add_program("qa", spec_data(), origin=f"o{i}", at=at(i)) for i in range(12))
        )
        assert sorted(v.version for v, _ in added) == list(range(1, 13))
        assert [v.version for v in await store.program_versions("qa")] == list(range(1, 13))

    async def test_list_programs_gives_each_latest_version(self, store: RegistryStore) -> None:
        await store.add_program("b", spec_data("b"), origin="1", at=at(0))
        await store.add_program("a", spec_data("a"), origin="2", at=at(1))
        await store.add_program("b", spec_data("b"), origin="3", at=at(2), run_id="r", score=0.9)
        summaries = await store.list_programs()
        assert [(s.name, s.latest_version, s.versions) for s in summaries] == [
            ("a", 1, 1),
            ("b", 2, 2),
        ]
        assert summaries[1].updated_at == at(2)
        assert summaries[1].score == 0.9

    async def test_returned_values_share_nothing_with_the_store(self, store: RegistryStore) -> None:
        stored, _ = await store.add_program("qa", spec_data(), origin="o", at=at(0))
        stored.spec["stages"].clear()
        fetched = await store.get_program("qa")
        assert fetched is not None
        assert fetched.spec["stages"]
        fetched.spec["name"] = "mutated"
        again = await store.get_program("qa", 1)
        assert again is not None
        assert again.spec["name"] == "qa"
        await store.record_requested(requested("r1").payload, at(0))
        run = await store.get_run("r1")
        assert run is not None
        assert run.budget is not None
        run.budget["max_lm_calls"] = 1
        run_again = await store.get_run("r1")
        assert run_again is not None
        assert run_again.budget == {"max_lm_calls": 100}

    async def test_a_run_moves_from_request_to_completion(self, store: RegistryStore) -> None:
        await store.record_requested(requested("r1").payload, at(0))
        run = await store.get_run("r1")
        assert run is not None
        assert (run.status, run.program_name, run.program_version) == (RunStatus.QUEUED, "qa", None)
        assert (run.strategy, run.seed, run.apply, run.metric) == (
            "bootstrap",
            7,
            True,
            "exact_match",
        )
        assert run.trainset_id is not None
        assert run.trainset_id.startswith("sha256:")
        await store.record_progress(
            progress("r1", best_score=0.6, evaluations=3, lm_calls=30, cost_usd=0.1).payload, at(2)
        )
        running = await store.get_run("r1")
        assert running is not None
        assert running.status is RunStatus.RUNNING
        assert (running.best_score, running.evaluations, running.lm_calls) == (0.6, 3, 30)
        assert running.started_at == at(2)
        assert running.finished_at is None
        finished = await store.record_completed(completed("r1").payload, at(10))
        assert finished == await store.get_run("r1")
        assert finished.status is RunStatus.COMPLETED
        assert finished.finished_at == at(10)
        assert finished.program_version == 1
        assert finished.best_score == 0.8
        assert finished.best_overrides == {"solve.instructions": "Answer with a number only."}
        assert (finished.lm_calls, finished.cached_calls, finished.cost_usd) == (40, 4, 0.2)
        assert finished.wall_s == 12.5
        assert finished.started_at == at(2)

    async def test_stale_progress_never_undoes_newer_news(self, store: RegistryStore) -> None:
        await store.record_progress(progress("r1", evaluations=5).payload, at(5))
        await store.record_progress(progress("r1", RunStatus.QUEUED, evaluations=1).payload, at(1))
        run = await store.get_run("r1")
        assert run is not None
        assert (run.status, run.evaluations) == (RunStatus.RUNNING, 5)
        await store.record_completed(completed("r1").payload, at(10))
        await store.record_progress(progress("r1", evaluations=9).payload, at(11))
        run = await store.get_run("r1")
        assert run is not None
        assert (run.status, run.evaluations) == (RunStatus.COMPLETED, 5)

    async def test_events_in_any_order_and_repeated_give_one_run(
        self, store: RegistryStore
    ) -> None:
        done = completed("r1", version=3).payload
        await store.record_completed(done, at(10))
        await store.record_requested(requested("r1").payload, at(0))
        once = await store.get_run("r1")
        await store.record_completed(done, at(10))
        await store.record_requested(requested("r1").payload, at(0))
        twice = await store.get_run("r1")
        assert once == twice
        assert twice is not None
        assert (twice.status, twice.program_version, twice.strategy) == (
            RunStatus.COMPLETED,
            3,
            "bootstrap",
        )
        assert twice.created_at == at(0)

    async def test_applied_version_and_listing(self, store: RegistryStore) -> None:
        await store.record_requested(requested("r1").payload, at(0))
        await store.record_requested(requested("r2", "other").payload, at(1))
        await store.record_requested(requested("r3").payload, at(2))
        await store.record_completed(completed("r3").payload, at(5))
        await store.set_applied_version("r3", 2)
        await store.set_applied_version("unknown", 2)
        r3 = await store.get_run("r3")
        assert r3 is not None
        assert r3.applied_version == 2
        assert await store.get_run("unknown") is None
        assert [r.run_id for r in await store.list_runs()] == ["r3", "r2", "r1"]
        assert [r.run_id for r in await store.list_runs(limit=2)] == ["r3", "r2"]
        assert [r.run_id for r in await store.list_runs(program="qa")] == ["r3", "r1"]
        queued = await store.list_runs(status=RunStatus.QUEUED)
        assert [r.run_id for r in queued] == ["r2", "r1"]

    async def test_candidates_are_recorded_once_in_order(self, store: RegistryStore) -> None:
        assert await store.add_candidate(candidate("r1", 2, at(2)))
        assert await store.add_candidate(candidate("r1", 1, at(1)))
        assert not await store.add_candidate(candidate("r1", 1, at(9)))
        assert await store.add_candidate(candidate("r2", 1, at(0)))
        found = await store.run_candidates("r1")
        assert [c.call_id for c in found] == ["r1:1", "r1:2"]
        assert found[0] == candidate("r1", 1, at(1))
        assert found[1].error == {"code": "x", "message": "y", "retryable": False}
        assert [c.call_id for c in await store.run_candidates("r1", limit=1)] == ["r1:1"]
        assert await store.run_candidates("nope") == []

    async def test_datasets_keep_their_first_sighting(self, store: RegistryStore) -> None:
        key = dataset_id([{"q": 1}])
        await store.record_dataset(key, None, at(0))
        await store.record_dataset(key, 1, at(5))
        await store.record_dataset(key, 2, at(6))
        found = await store.get_dataset(key)
        assert found is not None
        assert (found.count, found.created_at) == (1, at(0))
        assert await store.get_dataset(dataset_id([])) is None

    # -- progress history (run ids are unique to each test: PostgreSQL keeps one schema per
    # -- session, so that no other test's points can be in the way)

    async def test_history_has_a_point_per_progress_report_and_the_completion(
        self, store: RegistryStore
    ) -> None:
        run = "hist-points"
        report = progress(run, best_score=0.5, evaluations=2, lm_calls=10, cost_usd=0.05)
        await store.record_progress(report.payload, at(1))
        await store.record_progress(
            progress(run, best_score=0.7, evaluations=4, lm_calls=30, cost_usd=0.15).payload,
            at(2),
        )
        await store.record_completed(completed(run).payload, at(3))
        history = await store.run_history(run)
        assert history == [
            ProgressPoint(run, RunStatus.RUNNING, 2, 10, at(1), best_score=0.5, cost_usd=0.05),
            ProgressPoint(run, RunStatus.RUNNING, 4, 30, at(2), best_score=0.7, cost_usd=0.15),
            # The completion's point carries its usage: 40 calls, 5 evaluations, 0.8 best.
            ProgressPoint(run, RunStatus.COMPLETED, 5, 40, at(3), best_score=0.8, cost_usd=0.2),
        ]
        assert all(p.at.tzinfo is not None for p in history)
        assert await store.run_history("hist-unknown") == []

    async def test_history_is_ordered_by_lm_calls_then_time(self, store: RegistryStore) -> None:
        run = "hist-order"
        await store.record_progress(progress(run, evaluations=3, lm_calls=30).payload, at(1))
        await store.record_progress(progress(run, evaluations=1, lm_calls=10).payload, at(2))
        await store.record_progress(progress(run, evaluations=2, lm_calls=20).payload, at(6))
        # Same LM calls, another status: ordered by time, not by when it was recorded.
        paused = progress(run, RunStatus.PAUSED, evaluations=2, lm_calls=20).payload
        await store.record_progress(paused, at(4))
        assert keys(await store.run_history(run)) == [
            ("running", 1, 10, at(2)),
            ("paused", 2, 20, at(4)),
            ("running", 2, 20, at(6)),
            ("running", 3, 30, at(1)),
        ]

    async def test_a_repeated_report_adds_no_point(self, store: RegistryStore) -> None:
        run = "hist-repeat"
        report = progress(run, best_score=0.5, evaluations=2, lm_calls=10).payload
        await store.record_progress(report, at(1))
        await store.record_progress(report, at(1))
        # Published again later (a redelivery after the duplicate window): the same key.
        again = progress(run, best_score=0.6, evaluations=2, lm_calls=10).payload
        await store.record_progress(again, at(5))
        done = completed(run).payload
        await store.record_completed(done, at(8))
        await store.record_completed(done, at(9))
        history = await store.run_history(run)
        assert keys(history) == [("running", 2, 10, at(1)), ("completed", 5, 40, at(8))]
        assert history[0].best_score == 0.5  # the first report's point stays

    async def test_a_late_report_is_still_history(self, store: RegistryStore) -> None:
        run = "hist-late"
        await store.record_progress(progress(run, evaluations=5, lm_calls=50).payload, at(5))
        # Older than the last one applied: the run ignores it, the history keeps it.
        late = progress(run, best_score=0.3, evaluations=1, lm_calls=10).payload
        await store.record_progress(late, at(1))
        recorded = await store.get_run(run)
        assert recorded is not None
        assert (recorded.evaluations, recorded.lm_calls) == (5, 50)
        await store.record_completed(completed(run).payload, at(10))
        # After the completion too.
        await store.record_progress(progress(run, evaluations=4, lm_calls=45).payload, at(9))
        finished = await store.get_run(run)
        assert finished is not None
        assert (finished.status, finished.lm_calls) == (RunStatus.COMPLETED, 40)
        assert keys(await store.run_history(run)) == [
            ("running", 1, 10, at(1)),
            ("completed", 5, 40, at(10)),
            ("running", 4, 45, at(9)),
            ("running", 5, 50, at(5)),
        ]

    async def test_history_of_runs_does_not_mix_and_honours_the_limit(
        self, store: RegistryStore
    ) -> None:
        for n in range(5):
            report = progress("hist-a", evaluations=n, lm_calls=n * 10).payload
            await store.record_progress(report, at(n))
        await store.record_progress(progress("hist-b", evaluations=1, lm_calls=5).payload, at(0))
        a = await store.run_history("hist-a")
        assert [p.lm_calls for p in a] == [0, 10, 20, 30, 40]
        assert {p.run_id for p in a} == {"hist-a"}
        assert keys(await store.run_history("hist-b")) == [("running", 1, 5, at(0))]
        assert [p.lm_calls for p in await store.run_history("hist-a", limit=2)] == [0, 10]
        assert await store.run_history("hist-a", limit=0) == []
