"""The optimizer with the real evaluator service (both in-process) and the simulated LM over
HTTP: a random search over math_qa's variable space on a small split completes, every
proposal is scored once, and the best candidate is no worse than the program as it is."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from optimizer_helpers import (
    RunWatcher,
    eventually,
    optimizer_settings,
    start_replica,
    stream_events,
)

from dspex_contracts import (
    DatasetRef,
    EvaluationSettings,
    OptimizeRequested,
    OptimizeRequestedPayload,
    ProgramSource,
    subjects,
)
from dspex_evaluator import EvaluatorSettings
from dspex_evaluator import create_app as create_evaluator
from dspex_kernel import Endpoint, LMClient, ProgramSpec, Runtime, optimize
from dspex_optimizer import create_app as create_optimizer
from dspex_runtime import datasets
from dspex_runtime.lm_tracing import LM_SPAN_NAME
from dspex_runtime.telemetry import configure_tracing, inject_trace_headers, start_span
from dspex_runtime.testing.nats import NatsServer
from dspex_simlm import PRICES
from dspex_simlm.testing import SimLMProcess

pytestmark = pytest.mark.integration

MATH_QA = Path(__file__).resolve().parents[3] / "examples" / "math_qa"


def examples(name: str, n: int) -> list[dict[str, Any]]:
    lines = (MATH_QA / name).read_text(encoding="utf-8").splitlines()[:n]
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def sim_api_base() -> Iterator[str]:
    with SimLMProcess() as sim:
        yield sim.api_base


async def test_random_search_on_math_qa_with_the_real_evaluator(
    nats_server: NatsServer, watcher: RunWatcher, sim_api_base: str
) -> None:
    settings = EvaluatorSettings(
        nats_url=nats_server.url,
        http_port=0,
        lm_api_base=sim_api_base,
        lm_api_key="sk-test",
        lm_prices=PRICES,
        lm_cache="none",
        backoff_s=[0.1],
        concurrency=4,
        log_level="WARNING",
    )
    service, app = create_evaluator(settings)
    task = asyncio.create_task(service.serve(app))
    try:
        spec = ProgramSpec.load(MATH_QA / "program.yaml")
        run = OptimizeRequested.create(
            OptimizeRequestedPayload(
                run_id="math-random",
                program=ProgramSource(spec=spec.to_data()),
                trainset=DatasetRef(examples=examples("train.jsonl", 20)),
                valset=DatasetRef(examples=examples("dev.jsonl", 16)),
                metric="exact_match",
                strategy="random",
                strategy_params={"n_candidates": 3},
                seed=11,
                evaluation=EvaluationSettings(batch_size=8),
            )
        )
        await watcher.send(run)
        done = await watcher.completion("math-random", timeout_s=180)
    finally:
        if service.http_server is not None:
            service.http_server.should_exit = True
        await asyncio.wait_for(task, 30)
    p = done.payload
    assert (p.status, p.stop_reason) == ("completed", "finished"), p.error
    assert p.baseline_score is not None
    assert p.best_score is not None
    assert p.best_score >= p.baseline_score
    assert p.evaluations == 4  # the baseline and three candidates on the full valset
    assert p.usage.calls >= 16 * p.evaluations
    assert p.usage.cost_usd > 0
    scored = await stream_events(watcher.js, subjects.CANDIDATE_SCORED)
    per_call = Counter(e["payload"]["call_id"] for e in scored)
    assert len(per_call) == 2 * p.evaluations  # 16 examples in batches of 8
    assert set(per_call.values()) == {1}
    assert all(e["payload"]["error"] is None for e in scored)


# Small settings, so that each strategy's run takes seconds on two cores.
SAME_RESULT_PARAMS: dict[str, dict[str, Any]] = {
    "random": {"n_candidates": 3},
    "bootstrap": {"num_candidate_sets": 2, "max_bootstrapped_demos": 2, "bootstrap_batch": 8},
    "beacon": {"n_trials": 4, "minibatch_size": 6},
    "simba": {"bsize": 6, "num_candidates": 3, "max_steps": 2},
    "mipro": {
        "num_candidates": 3,
        "num_trials": 4,
        "minibatch_size": 6,
        "max_bootstrapped_demos": 2,
        "max_labeled_demos": 2,
    },
}


@pytest.mark.parametrize("strategy", sorted(SAME_RESULT_PARAMS))
async def test_a_strategy_ends_the_same_through_the_services_and_in_process(
    nats_server: NatsServer, sim_api_base: str, strategy: str
) -> None:
    """The same run, once through the optimizer and evaluator services and once as a
    library call in this process, with the same seed: the same winner and score."""
    lm = {"lm_api_base": sim_api_base, "lm_api_key": "sk-test", "lm_cache": "none"}
    evaluator_settings = EvaluatorSettings(
        nats_url=nats_server.url, http_port=0, backoff_s=[0.1], log_level="WARNING", **lm
    )
    service, app = create_evaluator(evaluator_settings)
    evaluator_task = asyncio.create_task(service.serve(app))
    datasets.clear_cache()
    replica = await start_replica(optimizer_settings(nats_server, **lm))
    nc = await nats.connect(nats_server.url)
    spec = ProgramSpec.load(MATH_QA / "program.yaml")
    train, dev = examples("train.jsonl", 24), examples("dev.jsonl", 12)
    params, seed = SAME_RESULT_PARAMS[strategy], 5
    try:
        watcher = await RunWatcher(nc, nc.jetstream()).start()
        run_id = f"same-{strategy}"
        await watcher.send(
            OptimizeRequested.create(
                OptimizeRequestedPayload(
                    run_id=run_id,
                    program=ProgramSource(spec=spec.to_data()),
                    trainset=DatasetRef(examples=train),
                    valset=DatasetRef(examples=dev),
                    metric="exact_match",
                    strategy=strategy,
                    strategy_params=params,
                    seed=seed,
                )
            )
        )
        done = (await watcher.completion(run_id, timeout_s=240)).payload
    finally:
        await nc.close()
        await replica.stop()
        if service.http_server is not None:
            service.http_server.should_exit = True
        await asyncio.wait_for(evaluator_task, 30)
    client = LMClient(endpoint=Endpoint(api_base=sim_api_base, api_key="sk-test"))
    here = await optimize(
        spec,
        train,
        dev,
        "exact_match",
        runtime=Runtime(client),
        strategy=strategy,
        seed=seed,
        params=params,
    )
    print(f"{strategy}: {done.baseline_score} -> {done.best_score}, {done.usage.calls} LM calls")
    assert (done.status, here.status) == ("completed", "completed"), (done.error, here.error)
    winner = {**(done.best_assignment or {}), **(done.best_overrides or {})}
    assert winner == here.best_overrides
    assert done.best_score == pytest.approx(here.best_score)
    assert done.evaluations == here.evaluations
    assert done.usage.calls == here.lm_calls


async def test_one_trace_follows_a_run_into_its_evaluations_and_lm_calls(
    nats_server: NatsServer, sim_api_base: str
) -> None:
    exporter = InMemorySpanExporter()

    def provider(name: str) -> TracerProvider:
        return configure_tracing(name, exporter=exporter, synchronous=True)

    lm = {"lm_api_base": sim_api_base, "lm_api_key": "sk-test", "lm_cache": "none"}
    evaluator_settings = EvaluatorSettings(
        nats_url=nats_server.url, http_port=0, backoff_s=[0.1], log_level="WARNING", **lm
    )
    service, app = create_evaluator(evaluator_settings, tracer_provider=provider("evaluator"))
    evaluator_task = asyncio.create_task(service.serve(app))
    datasets.clear_cache()
    optimizer, optimizer_app = create_optimizer(
        optimizer_settings(nats_server, **lm), tracer_provider=provider("optimizer")
    )
    optimizer_task = asyncio.create_task(optimizer.service.serve(optimizer_app))

    def started() -> bool:
        servers = (optimizer.service.http_server, service.http_server)
        return all(s is not None and s.started for s in servers)

    await eventually(started, "the optimizer and the evaluator to start")
    nc = await nats.connect(nats_server.url)
    client = provider("client")
    try:
        watcher = await RunWatcher(nc, nc.jetstream()).start()
        spec = ProgramSpec.load(MATH_QA / "program.yaml")
        event = OptimizeRequested.create(
            OptimizeRequestedPayload(
                run_id="traced",
                program=ProgramSource(spec=spec.to_data()),
                trainset=DatasetRef(examples=examples("train.jsonl", 8)),
                valset=DatasetRef(examples=examples("dev.jsonl", 4)),
                metric="exact_match",
                strategy="random",
                strategy_params={"n_candidates": 1},
                seed=1,
            )
        )
        with start_span("client requests a run", tracer_provider=client) as span:
            headers = inject_trace_headers({"Nats-Msg-Id": event.id})
            await watcher.js.publish(
                event.SUBJECT, event.model_dump_json().encode(), headers=headers
            )
            trace_id = span.get_span_context().trace_id
        await watcher.completion("traced", timeout_s=120)
    finally:
        await nc.close()
        for runtime in (optimizer.service, service):
            if runtime.http_server is not None:
                runtime.http_server.should_exit = True
        await asyncio.wait_for(asyncio.gather(optimizer_task, evaluator_task), 30)
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
    by_service: dict[str, set[str]] = {}
    for s in spans:
        by_service.setdefault(str(s.resource.attributes["service.name"]), set()).add(s.name)
    print({k: sorted(v) for k, v in by_service.items()})
    assert "dspex.optimize.run" in by_service["optimizer"]
    assert any(subjects.CANDIDATE_PROPOSED in n for n in by_service["optimizer"])
    assert any(subjects.CANDIDATE_PROPOSED in n for n in by_service["evaluator"])
    assert LM_SPAN_NAME in by_service["evaluator"]
    lm_calls = [s for s in spans if s.name == LM_SPAN_NAME]
    assert len(lm_calls) == 2 * 4  # baseline and one candidate, 4 examples each
