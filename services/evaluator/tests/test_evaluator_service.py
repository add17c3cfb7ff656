"""The evaluator service on a real nats-server with the simulated LM over HTTP: a proposal
on an uploaded dataset is scored, duplicates and redeliveries are stored once, replicas
share the work, unknown names are answered and dead-lettered, and a better candidate scores
higher."""

from __future__ import annotations

import nats
import pytest
from evaluator_helpers import (
    FakeRegistry,
    Optimizer,
    Replica,
    dev_examples,
    evaluator_settings,
    eventually,
    proposal,
    start_replica,
    train_examples,
)
from prometheus_client import generate_latest

from dspex_contracts import DatasetRef, ProgramRef, ProgramSource, dataset_id, subjects
from dspex_contracts.subjects import stream_for
from dspex_runtime import datasets
from dspex_runtime.datasets import put_dataset
from dspex_runtime.testing.nats import NatsServer
from dspex_runtime.testing.tools import ensure_promtool, promtool_check_metrics, require_tool

pytestmark = pytest.mark.integration


async def test_a_proposal_on_an_uploaded_dataset_is_scored(
    evaluator: Replica, optimizer: Optimizer
) -> None:
    ref = await put_dataset(optimizer.js, dev_examples())
    event = proposal(0, DatasetRef(id=ref.id, count=ref.count), [7, 3, 11, 3])
    await optimizer.send(event)
    answer = await optimizer.answer_to(event)
    payload = answer.payload
    assert answer.id == f"{event.payload.call_id}:scored"
    assert (answer.causation_id, answer.correlation_id) == (event.id, "run-test")
    assert (payload.run_id, payload.candidate_id, payload.error) == ("run-test", "c0000", None)
    assert [r.index for r in payload.results] == [7, 3, 11, 3]
    assert payload.results[1] == payload.results[3].model_copy(
        update={"latency_s": payload.results[1].latency_s}
    )
    assert payload.score == pytest.approx(sum(r.score for r in payload.results) / 4)
    assert all("answer" in r.outputs and r.usage.calls == 1 for r in payload.results)
    assert payload.usage.calls == 4
    assert payload.usage.cost_usd > 0
    assert payload.latency_s > 0
    assert all(r.trace is None for r in payload.results)


async def test_metrics_count_evaluations_scores_lm_calls_and_lag(
    evaluator: Replica, optimizer: Optimizer
) -> None:
    event = proposal(0, DatasetRef(examples=dev_examples()[:5]), [0, 1, 2])
    await optimizer.send(event)
    payload = (await optimizer.answer_to(event)).payload
    registry = evaluator.service.registry

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    # Counted right after the answer is published: the caller may hear of it first.
    await eventually(
        lambda: value("dspex_evaluator_evaluations_total", outcome="scored") == 1, "the count"
    )
    assert value("dspex_evaluator_candidate_score_count") == 1
    assert value("dspex_evaluator_candidate_score_sum") == pytest.approx(payload.score)
    examples = [value("dspex_evaluator_examples_total", outcome=o) or 0 for o in ("ok", "failed")]
    assert sum(examples) == 3
    lm = {"service": "evaluator", "model": "openai/sim-base"}
    assert value("dspex_lm_calls_total", **lm) == payload.usage.calls
    assert value("dspex_lm_cost_usd_total", **lm) == pytest.approx(payload.usage.cost_usd)
    lag = {"stream": stream_for(subjects.CANDIDATE_PROPOSED), "consumer": "evaluator"}
    assert value("dspex_consumer_pending_messages", **lag) is not None
    promtool = require_tool(ensure_promtool(), "promtool")
    checked = promtool_check_metrics(promtool, generate_latest(registry))
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_a_duplicate_or_redelivered_proposal_is_scored_once(
    evaluator: Replica, optimizer: Optimizer
) -> None:
    event = proposal(1, DatasetRef(examples=dev_examples()[:5]), [0, 1, 2])
    first = await optimizer.send(event)
    duplicate = await optimizer.send(event)
    assert (first.duplicate, duplicate.duplicate) == (None, True)
    await optimizer.answer_to(event)
    # A proposal delivered again (after the duplicate window, or by a replayed run) reaches
    # the evaluator, is scored again, and its answer is dropped by JetStream as a duplicate.
    again = await optimizer.send(event, msg_id=f"{event.id}-again")
    assert not again.duplicate
    await optimizer.handled_up_to(again.seq)
    stored = await optimizer.js.stream_info("DSPEX_CANDIDATE", subjects_filter="dspex.>")
    counts = stored.state.subjects or {}
    assert counts.get(subjects.CANDIDATE_PROPOSED) == 2
    assert counts.get(subjects.CANDIDATE_SCORED) == 1
    assert len(optimizer.answers_to(event)) == 1
    assert evaluator.handled() == 2


async def test_two_replicas_share_the_work(nats_server: NatsServer, sim_api_base: str) -> None:
    datasets.clear_cache()
    settings = evaluator_settings(nats_server, sim_api_base, concurrency=2, example_concurrency=2)
    replicas = [await start_replica(settings), await start_replica(settings)]
    nc = await nats.connect(nats_server.url)
    try:
        optimizer = await Optimizer(nc, nc.jetstream()).start()
        ref = await put_dataset(optimizer.js, dev_examples())
        events = [proposal(n, ref, range(n, n + 4)) for n in range(12)]
        for event in events:
            await optimizer.send(event)
        await eventually(lambda: len(optimizer.scored) >= len(events), "12 answers")
        assert sorted(s.payload.call_id for s in optimizer.scored) == sorted(
            e.payload.call_id for e in events
        )
        assert all(s.payload.error is None for s in optimizer.scored)
        handled = [r.handled() for r in replicas]
        assert sum(handled) == len(events)
        assert all(n > 0 for n in handled), f"both replicas must take proposals: {handled}"
    finally:
        await nc.close()
        for replica in replicas:
            await replica.stop()


async def test_unknown_names_are_answered_and_dead_lettered(
    evaluator: Replica, optimizer: Optimizer
) -> None:
    inline = DatasetRef(examples=dev_examples()[:3])
    never_uploaded = DatasetRef(id=dataset_id([{"question": "?", "answer": 0}]), count=1)
    unknown_dataset = proposal(10, never_uploaded, [0])
    unknown_metric = proposal(11, inline, [0], metric="no_such_metric")
    unknown_program = proposal(
        12, inline, [0], program=ProgramSource(ref=ProgramRef(name="no_such_program"))
    )
    outside_space = proposal(13, inline, [0], assignment={"temperature": 5.0})
    events = [unknown_dataset, unknown_metric, unknown_program, outside_space]
    for event in events:
        last = await optimizer.send(event)
    await optimizer.handled_up_to(last.seq)
    codes = []
    for event in events:
        answer = await optimizer.answer_to(event)
        assert answer.payload.error is not None
        assert (answer.payload.results, answer.payload.score) == ([], 0.0)
        codes.append(answer.payload.error.code)
    assert codes == [
        "unknown_dataset",
        "unknown_metric",
        "unknown_program",
        "invalid_configuration",
    ]
    await eventually(lambda: len(optimizer.dead) >= 3, "3 dead letters")
    dead = {d["payload"]["original_id"]: d["payload"] for d in optimizer.dead}
    assert {i: d["reason"] for i, d in dead.items()} == {
        unknown_dataset.id: "unknown_dataset",
        unknown_metric.id: "unknown_metric",
        unknown_program.id: "unknown_program",
    }
    assert all(d["service"] == "evaluator" and d["message"] for d in dead.values())


async def test_chain_of_thought_with_demos_beats_the_baseline(
    evaluator: Replica, optimizer: Optimizer
) -> None:
    ref = await put_dataset(optimizer.js, dev_examples())
    indices = range(40)
    demos = [{"question": ex["question"], "answer": ex["answer"]} for ex in train_examples()[:4]]
    baseline = proposal(20, ref, indices)
    cot = {"module": "chain_of_thought"}
    improved = proposal(21, ref, indices, assignment=cot, overrides={"solve.demos": demos})
    await optimizer.send(baseline)
    await optimizer.send(improved)
    before = (await optimizer.answer_to(baseline)).payload
    after = (await optimizer.answer_to(improved)).payload
    assert (before.error, after.error) == (None, None)
    assert len(before.results) == len(after.results) == 40
    assert all("reasoning" in r.outputs for r in after.results)
    assert after.score > before.score, (before.score, after.score)


async def test_programs_by_reference_come_from_the_registry(
    nats_server: NatsServer, sim_api_base: str
) -> None:
    datasets.clear_cache()
    nc = await nats.connect(nats_server.url)
    registry = await FakeRegistry(nc).start()
    replica = await start_replica(evaluator_settings(nats_server, sim_api_base), registry=True)
    try:
        optimizer = await Optimizer(nc, nc.jetstream()).start()
        inline = DatasetRef(examples=dev_examples()[:3])
        first, second = proposal(30, inline, [0, 1]), proposal(31, inline, [2])
        unknown = proposal(32, inline, [0], program=ProgramSource(ref=ProgramRef(name="nope")))
        await optimizer.send(first)
        assert (await optimizer.answer_to(first)).payload.error is None
        await optimizer.send(second)  # after the first: it finds math_qa in the cache
        await optimizer.send(unknown)
        assert (await optimizer.answer_to(second)).payload.error is None
        failed = (await optimizer.answer_to(unknown)).payload.error
        assert failed is not None
        assert failed.code == "unknown_program"
        await eventually(lambda: len(optimizer.dead) >= 1, "a dead letter")
        assert optimizer.dead[0]["payload"]["reason"] == "unknown_program"
        # The latest math_qa is asked for once, then served from the client's cache.
        assert sorted(g["name"] for g in registry.gets) == ["math_qa", "nope"]
    finally:
        await replica.stop()
        await nc.close()
