"""The registry's handlers and queries as plain functions over the in-memory store: versions,
idempotency on redelivery, applying a run's best configuration, and the error replies."""

from __future__ import annotations

import json

import pytest
from registry_helpers import completed, registered, requested, scored, spec_data

from dspex_contracts import (
    ProgramGetRequest,
    RunCandidatesRequest,
    RunGetRequest,
    RunStatus,
    dataset_id,
)
from dspex_kernel import ProgramError, ProgramSpec
from dspex_registry import handlers, queries
from dspex_registry.adapters.memory import InMemoryRegistryStore
from dspex_registry.adapters.rpc import answer
from dspex_registry.domain import UnknownProgram, UnknownRun
from dspex_runtime.errors import Retry

pytestmark = pytest.mark.unit

BETTER = "Answer with a number only."


async def test_registration_assigns_the_next_version_and_announces_it() -> None:
    store = InMemoryRegistryStore()
    first = await handlers.program_registered(registered(spec_data(), source="a.yaml"), store)
    event = registered({**spec_data(instructions="v2"), "version": 7}, registered_by="ann")
    second = await handlers.program_registered(event, store)
    assert (first.payload.version, first.payload.previous_version) == (1, None)
    assert (second.payload.version, second.payload.previous_version) == (2, 1)
    assert second.payload.spec["version"] == 2  # the registry owns version numbers
    assert ProgramSpec.from_data(second.payload.spec).version == 2
    assert second.causation_id == event.id
    assert second.id.startswith("program-updated:qa:2:")
    stored = await store.get_program("qa", 1)
    assert stored is not None
    assert stored.source == "a.yaml"


async def test_a_redelivered_registration_announces_the_same_version_again() -> None:
    store = InMemoryRegistryStore()
    event = registered(spec_data())
    once = await handlers.program_registered(event, store)
    again = await handlers.program_registered(event, store)
    assert once == again.model_copy(update={"occurred_at": once.occurred_at})
    assert len(await store.program_versions("qa")) == 1


async def test_an_invalid_spec_is_refused() -> None:
    store = InMemoryRegistryStore()
    bad = {
        **spec_data(),
        "stages": [{"name": "s", "module": "no_such_module", "signature": "a -> b"}],
    }
    with pytest.raises(ProgramError):
        await handlers.program_registered(registered(bad), store)
    assert await store.list_programs() == []


async def test_a_completed_run_with_apply_becomes_the_next_version_once() -> None:
    store = InMemoryRegistryStore()
    await handlers.program_registered(registered(spec_data()), store)
    await handlers.optimize_requested(requested("run-1"), store)
    event = completed("run-1", overrides={"solve.instructions": BETTER})
    update = await handlers.run_completed(event, store)
    assert update is not None
    assert (update.payload.version, update.payload.run_id, update.payload.score) == (
        2,
        "run-1",
        0.8,
    )
    spec = ProgramSpec.from_data(update.payload.spec)
    assert spec.configuration.stages["solve"].instructions == BETTER
    again = await handlers.run_completed(event, store)
    assert again is not None
    assert again.id == update.id
    assert len(await store.program_versions("qa")) == 2
    run = await store.get_run("run-1")
    assert run is not None
    assert (run.status, run.applied_version) == (RunStatus.COMPLETED, 2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"apply": False},
        {"best": 0.4},  # no better than the baseline
        {"best": None},
        {"status": RunStatus.CANCELLED},
        {"overrides": {}},
    ],
)
async def test_runs_that_should_not_change_the_program_do_not(kwargs: dict[str, object]) -> None:
    store = InMemoryRegistryStore()
    await handlers.program_registered(registered(spec_data()), store)
    await handlers.optimize_requested(requested("run-1"), store)
    assert await handlers.run_completed(completed("run-1", **kwargs), store) is None  # type: ignore[arg-type]
    assert len(await store.program_versions("qa")) == 1
    run = await store.get_run("run-1")
    assert run is not None
    assert run.applied_version is None
    assert run.status.terminal


async def test_an_inline_program_is_applied_from_the_spec_its_run_carried() -> None:
    store = InMemoryRegistryStore()
    inline = spec_data("fresh")
    await handlers.optimize_requested(requested("run-2", inline=inline), store)
    update = await handlers.run_completed(completed("run-2", "fresh"), store)
    assert update is not None
    assert (update.payload.name, update.payload.version) == ("fresh", 1)


async def test_applying_waits_for_the_request_then_gives_up_on_an_unknown_program() -> None:
    store = InMemoryRegistryStore()
    with pytest.raises(Retry):
        await handlers.run_completed(completed("run-3", "ghost"), store)
    await handlers.optimize_requested(requested("run-3", "ghost"), store)
    with pytest.raises(UnknownProgram, match="ghost"):
        await handlers.run_completed(completed("run-3", "ghost"), store)


async def test_requests_record_datasets_and_candidates_count_once() -> None:
    store = InMemoryRegistryStore()
    event = requested("run-4")
    await handlers.optimize_requested(event, store)
    examples = event.payload.trainset.examples
    assert examples is not None
    dataset = await store.get_dataset(dataset_id(examples))
    assert dataset is not None
    assert dataset.count == 2
    one = scored("run-4", 1)
    for candidate in (one, one, scored("run-4", 2)):
        await handlers.candidate_scored(candidate, store)
    found = await queries.run_candidates(store, RunCandidatesRequest(run_id="run-4"))
    assert [(c.call_id, c.examples, c.lm_calls) for c in found] == [
        ("run-4:1", 0, 2),
        ("run-4:2", 0, 2),
    ]


async def test_queries_name_what_is_missing() -> None:
    store = InMemoryRegistryStore()
    with pytest.raises(UnknownProgram, match="no program named 'qa'"):
        await queries.program_get(store, ProgramGetRequest(name="qa"))
    await handlers.program_registered(registered(spec_data()), store)
    with pytest.raises(UnknownProgram, match="no version 3"):
        await queries.program_get(store, ProgramGetRequest(name="qa", version=3))
    with pytest.raises(UnknownRun):
        await queries.run_get(store, RunGetRequest(run_id="nope"))
    with pytest.raises(UnknownRun):
        await queries.run_candidates(store, RunCandidatesRequest(run_id="nope"))


async def test_the_reply_edge_answers_everything() -> None:
    store = InMemoryRegistryStore()
    await handlers.program_registered(registered(spec_data()), store)
    ok, outcome = await answer(ProgramGetRequest, queries.program_get, store, b'{"name": "qa"}')
    reply = json.loads(ok)
    assert outcome == "ok"
    assert reply["ok"] is True
    assert reply["data"]["version"] == 1
    missing, _ = await answer(ProgramGetRequest, queries.program_get, store, b'{"name": "x"}')
    assert json.loads(missing) == {
        "ok": False,
        "error": {
            "code": "unknown_program",
            "message": "no program named 'x' is registered",
            "retryable": False,
        },
    }
    bad, outcome = await answer(ProgramGetRequest, queries.program_get, store, b'{"nam": 1}')
    assert outcome == "dead_lettered"
    assert json.loads(bad)["error"]["code"] == "invalid_request"
    assert "name" in json.loads(bad)["error"]["message"]

    async def broken(store: object, request: object) -> object:
        raise RuntimeError("database down")

    failed, outcome = await answer(ProgramGetRequest, broken, store, b'{"name": "qa"}')
    assert outcome == "failed"
    assert json.loads(failed)["error"] == {
        "code": "internal_error",
        "message": "RuntimeError: database down",
        "retryable": True,
    }
