"""The registry service on a real nats-server and SQLite: registrations become versions and
ProgramUpdated, a run's events become its history (and, applied, a new version), duplicates
count once, reads answer by request/reply, and a bad spec is dead-lettered."""

from __future__ import annotations

import json

import pytest
from registry_helpers import (
    Bus,
    completed,
    eventually,
    progress,
    registered,
    requested,
    scored,
    spec_data,
)

from dspex_contracts import RunStatus, dataset_id, registry_subject
from dspex_runtime.registry_client import RegistryClient, UnknownProgram, UnknownRun

pytestmark = pytest.mark.integration


async def test_registering_announces_each_new_version(registry: RegistryClient, bus: Bus) -> None:
    first = registered(spec_data(), source="qa.yaml", registered_by="ann")
    await bus.send(first)
    update = await bus.update("qa", 1)
    assert update.causation_id == first.id
    assert update.payload.previous_version is None
    spec = await registry.get_program("qa")
    assert spec == {**update.payload.spec, "version": 1}
    await bus.send(registered(spec_data(instructions="Think, then answer.")))
    second = await bus.update("qa", 2)
    assert second.payload.previous_version == 1
    latest = await registry.get_program("qa")
    assert latest["version"] == 2
    assert latest["stages"][0]["signature"]["instructions"] == "Think, then answer."
    assert (await registry.get_program("qa", 1))["version"] == 1
    info = (await registry.program_versions("qa"))[0]
    assert (info.source, info.registered_by) == ("qa.yaml", "ann")
    [summary] = await registry.list_programs()
    assert (summary.name, summary.latest_version, summary.versions) == ("qa", 2, 2)
    with pytest.raises(UnknownProgram) as missing:
        await registry.get_program("qa", 3)
    assert missing.value.code == "unknown_program"


async def test_a_redelivered_registration_is_one_version(
    registry: RegistryClient, bus: Bus
) -> None:
    event = registered(spec_data())
    await bus.send(event)
    await bus.send(event, msg_id="redelivered-later")  # stored again: the consumer sees it twice
    await bus.update("qa", 1)
    await bus.settled("DSPEX_PROGRAM", "registry-programs")
    assert [v.version for v in await registry.program_versions("qa")] == [1]
    announced = [u for u in bus.updates if u.payload.name == "qa"]
    assert len(announced) == 2  # announced again, with the same id: JetStream keeps one
    assert len({u.id for u in announced}) == 1


async def test_a_run_is_recorded_and_its_best_applied_once(
    registry: RegistryClient, bus: Bus
) -> None:
    await bus.send(registered(spec_data()))
    await bus.update("qa", 1)
    request = requested("run-7")
    await bus.send(request)
    await bus.send(progress("run-7", best_score=0.5, evaluations=1, lm_calls=10))
    for n in (1, 2):
        await bus.send(scored("run-7", n))
    await bus.send(scored("run-7", 1), msg_id="scored-again")
    done = completed("run-7", overrides={"solve.instructions": "Answer with a number only."})
    await bus.send(done)
    await bus.send(done, msg_id="completed-again")
    update = await bus.update("qa", 2)
    assert (update.payload.run_id, update.payload.score) == ("run-7", 0.8)
    assert update.causation_id == done.id

    async def applied() -> bool:
        run = await registry.get_run("run-7")
        return run.applied_version == 2 and run.strategy == "bootstrap"

    await eventually(applied, "the run to be recorded as applied")
    run = await registry.get_run("run-7")
    assert run.status is RunStatus.COMPLETED
    assert (run.best_score, run.baseline_score, run.evaluations) == (0.8, 0.4, 5)
    assert (run.lm_calls, run.cached_calls, run.wall_s) == (40, 4, 12.5)
    assert run.program_name == "qa"
    assert run.program_version == 1
    candidates = await eventually(
        lambda: _candidates(registry, "run-7", 2), "two candidates recorded"
    )
    assert [c.call_id for c in candidates] == ["run-7:1", "run-7:2"]
    assert [r.run_id for r in await registry.list_runs(status=RunStatus.COMPLETED)] == ["run-7"]
    assert await registry.list_runs(status="running") == []
    assert await registry.list_runs(program="other") == []
    examples = request.payload.trainset.examples
    assert examples is not None
    assert (await registry.get_dataset(dataset_id(examples))).count == 2
    await bus.settled("DSPEX_RUN", "registry-completed")
    await bus.settled("DSPEX_CANDIDATE", "registry-candidates")
    assert [v.version for v in await registry.program_versions("qa")] == [1, 2]
    assert len(await registry.run_candidates("run-7")) == 2
    with pytest.raises(UnknownRun):
        await registry.get_run("run-8")


async def _candidates(registry: RegistryClient, run_id: str, count: int) -> object:
    try:
        found = await registry.run_candidates(run_id)
    except UnknownRun:
        return None
    return found if len(found) >= count else None


async def test_an_invalid_spec_is_dead_lettered_and_bad_requests_answered(
    registry: RegistryClient, bus: Bus
) -> None:
    bad = registered({"name": "broken", "stages": []})
    await bus.send(bad)
    dead = await eventually(lambda: bus.dead, "a dead letter")
    assert dead[0]["payload"]["reason"] == "invalid_program"
    assert dead[0]["payload"]["original_id"] == bad.id
    reply = await bus.nc.request(registry_subject("program.get"), b"{not json", timeout=10)
    error = json.loads(reply.data)
    assert error["ok"] is False
    assert error["error"]["code"] == "invalid_request"
    listed = await bus.nc.request(registry_subject("program.list"), b"", timeout=10)
    assert json.loads(listed.data) == {"ok": True, "data": [], "error": None}
