"""The run store's contract, run against the in-memory store and the NATS KV one: the call
log keeps the first record of a call (large ones too), run ids are claimed once, scored
batches reach a waiting run, and commands settle in time order with cancel final."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import pytest

from dspex_contracts import CandidateScoredPayload
from dspex_optimizer.adapters.kv import KVRunStore
from dspex_optimizer.adapters.memory import InMemoryRunStore
from dspex_optimizer.ports import ControlCommand, RunStore
from dspex_runtime.testing.nats import NatsServer

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def scored(call_id: str, score: float) -> bytes:
    payload = CandidateScoredPayload(
        run_id="run", call_id=call_id, candidate_id="c1", score=score, latency_s=0.1
    )
    return payload.model_dump_json().encode()


class StoreContract:
    """Every RunStore passes these."""

    @pytest.fixture
    def run_id(self) -> str:
        return f"run-{uuid.uuid4().hex[:8]}"

    async def test_the_first_record_of_a_call_stays(self, store: RunStore, run_id: str) -> None:
        log = store.log(run_id)
        assert await log.get(0) is None
        await log.put(0, {"kind": "evaluate", "score": 0.5})
        await log.put(0, {"kind": "evaluate", "score": 0.9})
        assert await log.get(0) == {"kind": "evaluate", "score": 0.5}
        assert await store.log(run_id).get(0) == {"kind": "evaluate", "score": 0.5}
        assert await store.log(f"{run_id}-other").get(0) is None

    async def test_large_records_round_trip(self, store: RunStore, run_id: str) -> None:
        record: dict[str, Any] = {
            "kind": "evaluate",
            "outcomes": [{"index": i, "trace": "é" * 500} for i in range(40)],
        }
        log = store.log(run_id)
        await log.put(3, record)
        await log.put(3, {"kind": "evaluate", "outcomes": []})
        assert await log.get(3) == record

    async def test_a_run_id_is_claimed_by_one_request(self, store: RunStore, run_id: str) -> None:
        assert await store.claim(run_id, "request-a")
        assert await store.claim(run_id, "request-a")  # its redelivery
        assert not await store.claim(run_id, "request-b")

    async def test_scores_reach_a_waiting_run(self, store: RunStore, run_id: str) -> None:
        await store.record_scored(run_id, 0, 0, scored("run:0", 0.25))
        scores = await store.scores(run_id)
        try:
            assert (await scores.wait(0, 0)).score == 0.25  # recorded before anyone waited
            assert await scores.get(1, 2) is None
            waiting = asyncio.create_task(scores.wait(1, 2))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            await store.record_scored(run_id, 1, 2, scored("run:1:b2", 0.75))
            assert (await asyncio.wait_for(waiting, 10)).score == 0.75
            assert (await scores.get(1, 2)) == (await scores.wait(1, 2))
        finally:
            await scores.close()

    async def test_the_latest_command_wins_and_cancel_is_final(
        self, store: RunStore, run_id: str
    ) -> None:
        control = await store.control(run_id)
        try:
            assert await control() == "run"
            assert await store.command(run_id, ControlCommand("pause", T0, "p")) == "pause"
            await _settles(control, "pause")
            late = ControlCommand("run", T0 - timedelta(seconds=1), "old-resume")
            assert await store.command(run_id, late) == "pause"
            resume = ControlCommand("run", T0 + timedelta(seconds=1), "r")
            assert await store.command(run_id, resume) == "run"
            await _settles(control, "run")
            cancel = ControlCommand("cancel", T0, "c")
            assert await store.command(run_id, cancel) == "cancel"
            later = ControlCommand("run", T0 + timedelta(hours=1), "r2")
            assert await store.command(run_id, later) == "cancel"
            await _settles(control, "cancel")
        finally:
            await control.close()
        fresh = await store.control(run_id)
        try:
            assert await fresh() == "cancel"
        finally:
            await fresh.close()


async def _settles(control: Any, state: str) -> None:
    for _ in range(500):
        if await control() == state:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"control never said {state!r}")


@pytest.mark.unit
class TestInMemoryRunStore(StoreContract):
    @pytest.fixture
    def store(self) -> RunStore:
        return InMemoryRunStore()


@pytest.mark.integration
class TestKVRunStore(StoreContract):
    @pytest.fixture
    async def store(self, nats_server_module: NatsServer) -> AsyncIterator[RunStore]:
        nc = await nats.connect(nats_server_module.url)
        kv_store = await KVRunStore.open(
            nc,
            log_bucket="test_run_log",
            control_bucket="test_run_control",
            ttl_s=0,
            max_value=4096,  # so that the large record is chunked
        )
        try:
            yield kv_store
        finally:
            await nc.close()
