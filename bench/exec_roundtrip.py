"""ExecuteRequested → ExecuteCompleted through the kernel service, beside a raw nats-py
JetStream round trip (publish → durable consumer → publish reply) in the same run.

Everything is real and local: an embedded nats-server, one kernel replica as a separate
process, the simulated LM at 0 ms latency (so the figure is the bus and kernel overhead,
including litellm's HTTP call). Latency: sequential request → answer, p50/p99.
Throughput: N requests published at once, until the last answer arrives.

    .venv/bin/python bench/exec_roundtrip.py [--requests 300] [--burst 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from dspex_contracts import (
    ExecuteRequested,
    ExecuteRequestedPayload,
    ProgramRef,
    ProgramSource,
    subjects,
)
from dspex_runtime.testing.nats import NatsServer
from dspex_simlm.testing import SimLMProcess

REPO = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(
    js: JetStreamContext,
    nc: nats.NATS,
    answer_subject: str,
    send: Callable[[int], Awaitable[None]],
    requests: int,
    burst: int,
) -> tuple[list[float], float]:
    """Latencies of ``requests`` sequential round trips, then the throughput of a burst."""
    done: asyncio.Queue[float] = asyncio.Queue()

    async def on_answer(msg: nats.aio.msg.Msg) -> None:
        done.put_nowait(time.perf_counter())

    sub = await nc.subscribe(answer_subject, cb=on_answer)
    latencies = []
    for i in range(requests):
        t0 = time.perf_counter()
        await send(i)
        latencies.append(await asyncio.wait_for(done.get(), 30) - t0)
    t0 = time.perf_counter()
    await asyncio.gather(*(send(requests + i) for i in range(burst)))
    last = t0
    for _ in range(burst):
        last = await asyncio.wait_for(done.get(), 60)
    await sub.unsubscribe()
    return latencies, burst / (last - t0)


async def raw_echo(
    js: JetStreamContext, nc: nats.NATS, requests: int, burst: int
) -> tuple[list[float], float]:
    await js.add_stream(StreamConfig(name="RAW", subjects=["raw.>"]))
    psub = await js.pull_subscribe("raw.req", durable="echo")

    async def echo() -> None:
        while True:
            try:
                msgs = await psub.fetch(64, timeout=1)
            except TimeoutError:
                continue
            for msg in msgs:
                await js.publish("raw.rep", msg.data)
                await msg.ack()

    task = asyncio.create_task(echo())
    body = b'{"question": "x"}'

    async def send(i: int) -> None:
        await js.publish("raw.req", body, headers={"Nats-Msg-Id": f"raw-{i}"})

    try:
        return await measure(js, nc, "raw.rep", send, requests, burst)
    finally:
        task.cancel()


async def kernel(
    js: JetStreamContext, nc: nats.NATS, requests: int, burst: int
) -> tuple[list[float], float]:
    source = ProgramSource(ref=ProgramRef(name="math_qa"))

    async def send(i: int) -> None:
        event = ExecuteRequested.create(
            ExecuteRequestedPayload(program=source, inputs={"question": f"What is {i} + 1?"})
        )
        await js.publish(
            subjects.EXEC_REQUESTED,
            event.model_dump_json().encode(),
            headers={"Nats-Msg-Id": event.id},
        )

    return await measure(js, nc, subjects.EXEC_COMPLETED, send, requests, burst)


async def main_async(args: argparse.Namespace, url: str, start_kernel: Callable[[], None]) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    raw = await raw_echo(js, nc, args.requests, args.burst)
    start_kernel()
    await asyncio.sleep(0)
    ours = None
    for _ in range(100):  # the kernel declares its streams at start
        try:
            await js.stream_info("DSPEX_EXEC")
            ours = await kernel(js, nc, args.requests, args.burst)
            break
        except Exception:
            await asyncio.sleep(0.2)
    await nc.close()
    assert ours is not None, "the kernel service did not come up"
    report(args, raw, ours)


def report(
    args: argparse.Namespace, raw: tuple[list[float], float], ours: tuple[list[float], float]
) -> None:
    def line(name: str, data: tuple[list[float], float]) -> tuple[float, float, float]:
        lat, tput = data
        p50, p99 = percentile(lat, 0.5) * 1e3, percentile(lat, 0.99) * 1e3
        print(f"  {name:34s} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  throughput {tput:8.0f} msg/s")
        return p50, p99, tput

    print(f"round trips: {args.requests} sequential, then a burst of {args.burst}")
    r = line("raw nats-py JetStream echo", raw)
    o = line("ExecuteRequested -> ExecuteCompleted", ours)
    print(
        f"  ratio kernel/raw: p50 x{o[0] / r[0]:.1f}, p99 x{o[1] / r[1]:.1f}, "
        f"throughput x{o[2] / r[2]:.3f}"
    )
    print(
        f"  (median raw {statistics.median(raw[0]) * 1e3:.2f} ms; "
        f"median kernel {statistics.median(ours[0]) * 1e3:.2f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--burst", type=int, default=1000)
    args = parser.parse_args()
    with NatsServer() as server, SimLMProcess() as sim, tempfile.TemporaryDirectory() as tmp:
        shutil.copy(REPO / "examples" / "math_qa" / "program.yaml", Path(tmp) / "math_qa.yaml")
        env = {
            **os.environ,
            "DSPEX_NATS_URL": server.url,
            "DSPEX_LM_API_BASE": sim.api_base,
            "DSPEX_LM_API_KEY": "sk-sim",
            "DSPEX_LM_CACHE": "none",
            "DSPEX_PROGRAMS_DIR": tmp,
            "DSPEX_HTTP_PORT": "0",
            "DSPEX_LOG_LEVEL": "WARNING",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        log = open(Path(tmp) / "kernel.log", "w")  # noqa: SIM115 - closed below
        procs: list[subprocess.Popen[bytes]] = []

        def start_kernel() -> None:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "dspex_kernel_service"], env=env, stdout=log, stderr=log
                )
            )

        try:
            asyncio.run(main_async(args, server.url, start_kernel))
        finally:
            for p in procs:
                p.terminate()
                p.wait(10)
            log.close()


if __name__ == "__main__":
    main()
