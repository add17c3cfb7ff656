"""Load: ExecuteRequested published at a steady rate (well below the ~129 messages/s one
kernel replica sustains in bench/exec_roundtrip.py) for a bounded time, through the
embedded stack. No request is lost or answered twice, the kernels' memory does not grow
by more than 10% after warm-up, and the latency of each window is printed; under
``make soak`` (DSPEX_SOAK=1: ten minutes) the p99 of the last window must also stay
within 1.5x that of the first window after warm-up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from crash_helpers import EXAMPLE, examples

from dspex_client import DSPExClient
from dspex_client.stack import Stack, StackOptions
from dspex_contracts import subjects
from dspex_kernel import ProgramSpec

pytestmark = pytest.mark.e2e

SOAK = os.environ.get("DSPEX_SOAK") == "1"
DURATION_S = 600.0 if SOAK else 24.0
RATE = 40.0  # requests per second, over two kernel replicas
WINDOWS = 4  # the first is warm-up


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    options = StackOptions(
        data_dir=tmp_path_factory.mktemp("load"),
        nats_port=0,
        kernels=2,
        services=("registry", "kernel"),
        ready_timeout_s=90.0,
        log_level="WARNING",
        env={"DSPEX_LM_CACHE": "none"},  # every request makes its LM call over HTTP
    )
    with Stack(options) as running:
        yield running


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def test_sustained_executions_lose_nothing_and_keep_memory_flat(stack: Stack) -> None:
    kernels = [c for c in stack.services if c.kind == "kernel"]
    questions = [r["question"] for r in examples("test", 0, 200)]

    async def go() -> tuple[dict[str, float], dict[str, float], Counter[str], list[list[int]]]:
        sent: dict[str, float] = {}
        answered: dict[str, float] = {}
        counts: Counter[str] = Counter()
        memory: list[list[int]] = []
        all_answered = asyncio.Event()
        sending_done = False
        async with DSPExClient(stack.nats_url) as client:
            spec = ProgramSpec.load(EXAMPLE / "program.yaml").model_dump(mode="json")
            await client.register_program(spec, source="test")

            async def on_answer(msg: object) -> None:
                data = json.loads(msg.data)  # type: ignore[attr-defined]
                request_id = data["payload"]["request_id"]
                counts[request_id] += 1
                answered.setdefault(request_id, time.monotonic())
                if sending_done and len(answered) >= len(sent):
                    all_answered.set()

            subs = [
                await client.nc.subscribe(subject, cb=on_answer)
                for subject in (subjects.EXEC_COMPLETED, subjects.EXEC_FAILED)
            ]
            started = time.monotonic()
            n = 0
            next_window = started
            while (now := time.monotonic()) - started < DURATION_S:
                if now >= next_window:
                    memory.append([rss_kib(k.pid) for k in kernels])
                    next_window += DURATION_S / WINDOWS
                due = started + n / RATE
                if due > now:
                    await asyncio.sleep(due - now)
                question = questions[n % len(questions)]
                request_id = await client.publish_execute("math_qa", {"question": question})
                sent[request_id] = time.monotonic()
                n += 1
            sending_done = True
            all_answered.clear()
            if len(answered) < len(sent):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(all_answered.wait(), 60)
            await asyncio.sleep(2)  # any duplicate answer would arrive by now
            memory.append([rss_kib(k.pid) for k in kernels])
            for sub in subs:
                await sub.unsubscribe()
        return sent, answered, counts, memory

    sent, answered, counts, memory = asyncio.run(go())
    order = sorted(sent, key=sent.__getitem__)
    per_window = -(-len(order) // WINDOWS)
    p99s = []
    for w in range(WINDOWS):
        ids = [i for i in order[w * per_window : (w + 1) * per_window] if i in answered]
        latencies = [answered[i] - sent[i] for i in ids]
        p99s.append(p99(latencies) if len(latencies) > 1 else float("nan"))
        print(
            f"window {w}: {len(ids)} answered, p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"p99 {p99s[-1] * 1000:.0f} ms, kernel RSS {memory[w]} KiB"
        )
    print(
        f"sent {len(sent)} in {DURATION_S:.0f} s ({len(sent) / DURATION_S:.1f}/s); "
        f"kernel RSS after warm-up {memory[1]} KiB, at the end {memory[-1]} KiB"
    )
    assert set(answered) == set(sent), f"{len(set(sent) - set(answered))} requests unanswered"
    assert {i: c for i, c in counts.items() if c != 1} == {}
    for before, after in zip(memory[1], memory[-1], strict=True):
        assert after <= before * 1.10, (before, after)
    if SOAK:
        assert p99s[-1] <= 1.5 * p99s[1], p99s
