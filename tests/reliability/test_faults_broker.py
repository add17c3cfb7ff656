"""Broker faults on the real stack: nats-server (file storage, ``sync_interval: always``) is
stopped mid-run and started again on the same port and store. Every service's /readyz
reports the outage and recovers; the run resumes and completes with nothing lost: every
evaluation call is scored exactly once and the result equals the uninterrupted run's."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from crash_helpers import call_counts, examples, outcome, run_events, start_run
from nats.js import JetStreamContext

from dspex_client import DSPExClient
from dspex_client.stack import Stack, StackOptions
from dspex_contracts import DatasetRef, RunCompletedPayload, subjects
from dspex_kernel import ProgramSpec
from dspex_runtime.testing.nats import NatsServer
from dspex_simlm.testing import set_config

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "math_qa"
LATENCY_MS = 100
OUTAGE_S = 3.0
WAIT_S = 120.0


@pytest.fixture(scope="module")
def nats_server() -> Iterator[NatsServer]:
    """Our own nats-server, so that the test can stop it and start it again on the same
    port with the same JetStream store."""
    with NatsServer() as server:
        yield server


@pytest.fixture(scope="module")
def stack(nats_server: NatsServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The simulated LM, registry, kernel, two evaluators and one optimizer on that NATS; no
    LM cache, so that the repeated run does the same work again."""
    options = StackOptions(
        data_dir=tmp_path_factory.mktemp("dspex-broker-faults"),
        nats_url=nats_server.url,
        evaluators=2,
        ready_timeout_s=90.0,
        stop_timeout_s=15.0,
        log_level="WARNING",
        sim_latency_ms=LATENCY_MS,
        env={"DSPEX_LM_CACHE": "none"},
    )
    with Stack(options) as running:
        yield running


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5.0) as response:
            return bool(200 <= response.status < 300)
    except (urllib.error.URLError, OSError):
        return False


class ReadinessWatch:
    """Polls each service's /readyz in its own thread (a not-ready answer can take the
    ping's timeout); remembers when each was first seen not ready and then ready again
    (monotonic seconds at the start of the answering request)."""

    def __init__(self, urls: dict[str, str], poll_s: float = 0.1) -> None:
        self.urls, self.poll_s = urls, poll_s
        self.down: dict[str, float] = {}
        self.up: dict[str, float] = {}
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._poll, args=(name, url), daemon=True)
            for name, url in urls.items()
        ]

    def _poll(self, name: str, url: str) -> None:
        while not self._stop.is_set() and name not in self.up:
            asked = time.monotonic()
            ok = ready(url)
            if not ok and name not in self.down:
                self.down[name] = asked
            elif ok and name in self.down:
                self.up[name] = asked
            self._stop.wait(self.poll_s)

    def __enter__(self) -> ReadinessWatch:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def wait_all_up(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.up) < len(self.urls) and time.monotonic() < deadline:
            time.sleep(0.1)


async def scored_count(js: JetStreamContext, run_id: str) -> int:
    return len(await run_events(js, subjects.CANDIDATE_SCORED, run_id))


def test_broker_restart_mid_run_loses_nothing(stack: Stack, nats_server: NatsServer) -> None:
    assert stack.lm_api_base is not None
    set_config(stack.lm_api_base, latency_ms=LATENCY_MS, fault_rate=0.0)
    urls = {c.name: c.url for c in stack.services if c.url is not None}

    async def reference() -> tuple[DatasetRef, DatasetRef, RunCompletedPayload, int, float]:
        spec = ProgramSpec.load(EXAMPLE / "program.yaml").model_dump(mode="json")
        async with DSPExClient(stack.nats_url) as client:
            await client.register_program(spec, source="test")
            train = await client.upload_dataset(examples("train", 0, 16))
            val = await client.upload_dataset(examples("dev", 0, 24))
            started = time.monotonic()
            await start_run(client, "broker-reference", train, val)
            done = await client.wait_run("broker-reference", timeout_s=WAIT_S)
            wall = time.monotonic() - started
            proposed, scored = await call_counts(client.js, "broker-reference")
        assert set(scored) == proposed
        assert set(scored.values()) == {1}
        return train, val, done.payload, len(proposed), wall

    train, val, ref, ref_calls, ref_wall = asyncio.run(reference())
    print(f"\nreference: {ref_calls} calls in {ref_wall:.1f} s, {outcome(ref)}")

    async def begin() -> None:
        async with DSPExClient(stack.nats_url) as client:
            await start_run(client, "broker-outage", train, val)
            # Mid-run: some scores are in, most of the work is still to do.
            deadline = time.monotonic() + 60
            while await scored_count(client.js, "broker-outage") < 3:
                assert time.monotonic() < deadline, "the run made no progress"
                await asyncio.sleep(0.2)

    started = time.monotonic()
    asyncio.run(begin())
    with ReadinessWatch(urls) as watch:
        stopped = time.monotonic()
        nats_server.stop()  # SIGTERM
        time.sleep(OUTAGE_S)
        nats_server.start()
        restarted = time.monotonic()
        watch.wait_all_up(timeout_s=60)

    async def finish() -> tuple[RunCompletedPayload, tuple[set[str], Counter[str]]]:
        async with DSPExClient(stack.nats_url) as client:
            done = await client.wait_run("broker-outage", timeout_s=WAIT_S)
            return done.payload, await call_counts(client.js, "broker-outage")

    done, (proposed, scored) = asyncio.run(finish())
    wall = time.monotonic() - started
    back = {name: round(t - restarted, 2) for name, t in watch.up.items()}
    print(
        f"\nbroker outage: {restarted - stopped:.1f} s; not ready within "
        f"{max((t - stopped for t in watch.down.values()), default=float('nan')):.2f} s of the "
        f"stop; ready again after the restart (s): {back}; run wall {wall:.1f} s "
        f"(reference {ref_wall:.1f} s); {len(proposed)} calls proposed, "
        f"{sum(scored.values())} scored; {outcome(done)}"
    )
    assert set(watch.down) == set(urls), f"never seen not ready: {set(urls) - set(watch.down)}"
    assert all(stopped <= t <= restarted for t in watch.down.values())
    assert set(watch.up) == set(urls), f"not ready again: {set(urls) - set(watch.up)}"
    assert outcome(done) == outcome(ref)
    assert {call: n for call, n in scored.items() if n != 1} == {}
    assert set(scored) == proposed
    assert len(proposed) == ref_calls
