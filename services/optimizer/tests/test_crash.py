"""Durability: the optimizer owning a run is SIGKILLed mid-run; a new replica (another
process) picks the run up after ack_wait, replays it from the run log and ends it exactly
as an uninterrupted run with the same seed ends, with every proposal scored once. Shown for
random search, and for SIMBA and MIPRO, whose prompt-model calls (rules, instruction
proposals) go to the simulated LM and are replayed from the log too."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from optimizer_helpers import BusEvaluator, RunWatcher, eventually, request, stream_events

from dspex_contracts import RunCompleted, subjects
from dspex_runtime import datasets
from dspex_runtime.testing.nats import NatsServer
from dspex_simlm.testing import SimLMProcess, get_stats

pytestmark = pytest.mark.integration


class Processes:
    """Optimizer replicas as child processes, logging to files (never an unread pipe)."""

    def __init__(self, server: NatsServer, folder: Path, api_base: str) -> None:
        self.server = server
        self.folder = folder
        self.api_base = api_base
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "DSPEX_NATS_URL": self.server.url,
            "DSPEX_HTTP_PORT": "0",
            "DSPEX_ACK_WAIT_S": "3",
            "DSPEX_BACKOFF_S": "[0.1]",
            "DSPEX_LM_CACHE": "none",
            "DSPEX_LM_API_BASE": self.api_base,
            "DSPEX_LM_API_KEY": "sk-test",
            "DSPEX_LM_MODEL": "openai/sim-base",
            "DSPEX_LOG_LEVEL": "WARNING",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        log = (self.folder / f"optimizer-{len(self.started)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "dspex_optimizer"], env=env, stdout=log, stderr=log
        )
        self.started.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.folder.glob("optimizer-*.log")))

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.fixture(scope="module")
def sim_lm() -> Iterator[str]:
    with SimLMProcess(latency_ms=0, seed=0) as sim:
        yield sim.api_base


@pytest.fixture
def processes(nats_server: NatsServer, tmp_path: Path, sim_lm: str) -> Iterator[Processes]:
    started = Processes(nats_server, tmp_path, sim_lm)
    yield started
    started.stop_all()


def result(event: RunCompleted) -> tuple[object, ...]:
    p = event.payload
    return (p.status, p.best_assignment, p.best_overrides, p.best_score, p.evaluations, p.details)


STRATEGIES = {
    "random": {"n_candidates": 6},
    "simba": {"bsize": 6, "num_candidates": 3, "max_steps": 2},
    "mipro": {
        "num_candidates": 3,
        "num_trials": 6,
        "minibatch_size": 4,
        "minibatch_full_eval_steps": 3,
        "max_bootstrapped_demos": 2,
        "max_labeled_demos": 2,
    },
}


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
async def test_a_run_survives_the_death_of_its_owner(
    nats_server: NatsServer, processes: Processes, strategy: str
) -> None:
    datasets.clear_cache()
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    watcher = await RunWatcher(nc, js).start()
    evaluator = BusEvaluator(nc, js, delay_s=0.3)
    try:
        first = processes.start()

        async def consumer_ready() -> bool:
            try:
                await js.consumer_info("DSPEX_OPTIMIZE", "optimizer")
            except Exception:
                return False
            return True

        for _ in range(600):
            if await consumer_ready():
                break
            assert first.poll() is None, processes.logs()
            await asyncio.sleep(0.05)
        await evaluator.start()
        params = STRATEGIES[strategy]
        asked = [get_stats(processes.api_base)["requests_total"]]
        await watcher.send(request("crash", strategy=strategy, params=params, concurrency=1))
        await eventually(lambda: len(evaluator.proposals) >= 4, "some scored proposals")
        first.kill()  # SIGKILL: no goodbye, the run's message stays unacknowledged
        first.wait()
        assert watcher.completed == []
        at_kill = len(evaluator.proposals)
        processes.start()
        done = await watcher.completion("crash", timeout_s=120)
        asked.append(get_stats(processes.api_base)["requests_total"])
        assert len(evaluator.proposals) > at_kill  # the new owner carried on
        await watcher.send(request("calm", strategy=strategy, params=params, concurrency=1))
        calm = await watcher.completion("calm", timeout_s=120)
        asked.append(get_stats(processes.api_base)["requests_total"])
    except AssertionError:
        print(processes.logs())
        raise
    finally:
        await evaluator.stop()
    assert done.payload.status == "completed", done.payload
    assert result(done) == result(calm)
    # The prompt model's answers were replayed from the run log, not asked again: the
    # crashed run sent no more requests than the calm one, beyond calls in flight at the kill.
    calm_asked = asked[2] - asked[1]
    crash_asked = asked[1] - asked[0]
    assert calm_asked <= crash_asked <= calm_asked + 4
    if strategy != "random":
        assert calm_asked > 0
    scored = await stream_events(js, subjects.CANDIDATE_SCORED)
    proposed = await stream_events(js, subjects.CANDIDATE_PROPOSED)
    crash_scored = Counter(e["payload"]["call_id"] for e in scored if e["id"].startswith("crash:"))
    crash_proposed = Counter(e["id"] for e in proposed if e["id"].startswith("crash:"))
    assert set(crash_scored) == set(crash_proposed)
    assert set(crash_scored.values()) == {1}
    assert set(crash_proposed.values()) == {1}
    # Every evaluation that needed the evaluators was proposed once; the others were
    # answered by the run's own earlier outcomes, the same calls in both runs.
    calm_proposed = {e["id"].partition(":")[2] for e in proposed if e["id"].startswith("calm:")}
    assert {i.partition(":")[2] for i in crash_proposed} == calm_proposed
    assert 0 < len(crash_proposed) <= done.payload.evaluations
    await nc.close()
