"""Evaluation throughput with 1, 2 and 4 evaluator replicas, each a separate process
(``python -m dspex_evaluator``) sharing one durable consumer, against the simulated LM at a
fixed latency (200 ms) over real HTTP (litellm).

Each replica may have ``--example-concurrency`` LM calls in flight, so replicas are what adds
throughput. The ideal wall time is examples x latency / (replicas x example concurrency);
the printed ratio is measured / ideal and the scaling factor is wall(1 replica) / wall(n).

    .venv/bin/python bench/evaluator_scaling.py [--replicas 1 2 4] [--proposals 40]
        [--examples 10] [--latency-ms 200] [--example-concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from dspex_contracts import (
    CandidateProposed,
    CandidateProposedPayload,
    CandidateScored,
    DatasetRef,
    ProgramSource,
    call_id_for,
    subjects,
)
from dspex_kernel import ProgramSpec, load_examples
from dspex_runtime.datasets import put_dataset
from dspex_runtime.testing.nats import NatsServer
from dspex_simlm.testing import SimLMProcess

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "math_qa"
HANDLED_OK = re.compile(
    r'^dspex_messages_handled_total\{[^}]*outcome="ok"[^}]*\} ([0-9.e+]+)$', re.MULTILINE
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def handled(port: int) -> float:
    """Proposals a replica has scored, from its /metrics (0 while it is not serving)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(float(v) for v in HANDLED_OK.findall(text))


class Replicas:
    """``count`` evaluator processes, logging to files (never to unread pipes)."""

    def __init__(self, count: int, env: dict[str, str], logs: Path) -> None:
        self.ports = [free_port() for _ in range(count)]
        self.procs: list[subprocess.Popen[bytes]] = []
        for i, port in enumerate(self.ports):
            with open(logs / f"evaluator-{count}-{i}.log", "wb") as log:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "dspex_evaluator"],
                        env={**env, "DSPEX_HTTP_PORT": str(port)},
                        stdout=log,
                        stderr=log,
                    )
                )

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"an evaluator exited with {proc.returncode}; see its log")

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(30)


class Bench:
    def __init__(self, nc: Client, args: argparse.Namespace, dataset: DatasetRef) -> None:
        self.nc, self.js, self.args, self.dataset = nc, nc.jetstream(), args, dataset
        spec = ProgramSpec.load(EXAMPLE / "program.yaml")
        self.program = ProgramSource(spec=spec.to_data())
        self.answered: dict[str, float] = {}
        self.errors: list[str] = []

    async def start(self) -> None:
        async def on_scored(msg: Msg) -> None:
            scored = CandidateScored.model_validate_json(msg.data)
            if scored.payload.error is not None:
                self.errors.append(f"{scored.payload.call_id}: {scored.payload.error}")
            self.answered.setdefault(scored.payload.call_id, time.perf_counter())

        await self.nc.subscribe(subjects.CANDIDATE_SCORED, cb=on_scored)

    async def send(self, run_id: str, count: int, examples: int) -> list[str]:
        size = self.dataset.count or 1
        calls = []
        for n in range(count):
            start = (n * examples) % size
            indices = [(start + i) % size for i in range(examples)]
            event = CandidateProposed.create(
                CandidateProposedPayload(
                    run_id=run_id,
                    call_id=call_id_for(run_id, n),
                    candidate_id=f"c{n}",
                    program=self.program,
                    dataset=self.dataset,
                    example_indices=indices,
                    metric="numeric",
                )
            )
            await self.js.publish(
                subjects.CANDIDATE_PROPOSED,
                event.model_dump_json().encode(),
                headers={"Nats-Msg-Id": event.id},
            )
            calls.append(event.payload.call_id)
        return calls

    async def wait(self, calls: list[str], timeout_s: float = 600) -> float:
        deadline = time.perf_counter() + timeout_s
        while not all(c in self.answered for c in calls):
            if self.errors:
                raise RuntimeError(f"calls failed: {self.errors[:3]}")
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{sum(c in self.answered for c in calls)}/{len(calls)}")
            await asyncio.sleep(0.01)
        return max(self.answered[c] for c in calls)

    async def warm_up(self, replicas: Replicas) -> None:
        """Until every replica has scored something: litellm's import (seconds) must not
        fall inside the measurement."""
        for attempt in range(30):
            replicas.check_alive()
            if all(handled(port) > 0 for port in replicas.ports):
                return
            per = len(replicas.ports) * self.args.example_concurrency * 2
            await self.wait(await self.send(f"warm-{len(replicas.ports)}-{attempt}", per, 1))
        raise RuntimeError("not every replica took a warm-up proposal")

    async def measure(self, replicas: Replicas) -> tuple[float, list[int]]:
        """Wall time of the proposals, and how many each replica scored."""
        before = [handled(port) for port in replicas.ports]
        t0 = time.perf_counter()
        run_id = f"bench-{len(replicas.ports)}"
        calls = await self.send(run_id, self.args.proposals, self.args.examples)
        wall = await self.wait(calls) - t0
        await asyncio.sleep(0.5)  # the last acks reach the counters
        split = [int(handled(p) - b) for p, b in zip(replicas.ports, before, strict=True)]
        return wall, split


async def run(args: argparse.Namespace, url: str, env: dict[str, str], logs: Path) -> None:
    nc = await nats.connect(url)
    examples = load_examples(EXAMPLE / "dev.jsonl")
    bench: Bench | None = None
    walls: dict[int, tuple[float, list[int]]] = {}
    try:
        for count in args.replicas:
            replicas = Replicas(count, env, logs)
            try:
                while bench is None:  # the first replica declares the streams
                    replicas.check_alive()
                    try:
                        await nc.jetstream().stream_info("DSPEX_CANDIDATE")
                    except Exception:
                        await asyncio.sleep(0.2)
                        continue
                    bench = Bench(nc, args, await put_dataset(nc, examples))
                    await bench.start()
                await bench.warm_up(replicas)
                walls[count] = await bench.measure(replicas)
            finally:
                replicas.stop()
    finally:
        await nc.close()
    report(args, walls)


def report(args: argparse.Namespace, walls: dict[int, tuple[float, list[int]]]) -> None:
    total = args.proposals * args.examples
    latency = args.latency_ms / 1000
    print(
        f"evaluator scaling: {args.proposals} proposals x {args.examples} examples = {total} "
        f"examples; LM latency {args.latency_ms} ms; example concurrency "
        f"{args.example_concurrency} and {args.concurrency} proposals at once per replica"
    )
    print(
        f"  {'replicas':>8}  {'wall s':>7}  {'examples/s':>10}  {'ideal s':>7}  "
        f"{'ratio':>6}  {'scaling':>7}  proposals per replica"
    )
    base = walls[min(walls)][0] if walls else None
    for count, (wall, split) in walls.items():
        ideal = total * latency / (count * args.example_concurrency)
        scaling = f"x{base / wall:.2f}" if base else "-"
        print(
            f"  {count:>8}  {wall:>7.2f}  {total / wall:>10.1f}  {ideal:>7.2f}  "
            f"{wall / ideal:>6.2f}  {scaling:>7}  {'/'.join(map(str, split))}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--proposals", type=int, default=40)
    parser.add_argument("--examples", type=int, default=10)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--example-concurrency", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4, help="proposals per replica")
    args = parser.parse_args()
    with (
        NatsServer() as server,
        SimLMProcess(latency_ms=args.latency_ms) as sim,
        tempfile.TemporaryDirectory() as tmp,
    ):
        env = {
            **os.environ,
            "DSPEX_NATS_URL": server.url,
            "DSPEX_LM_API_BASE": sim.api_base,
            "DSPEX_LM_API_KEY": "sk-sim",
            "DSPEX_LM_CACHE": "none",  # every example must reach the LM
            "DSPEX_CONCURRENCY": str(args.concurrency),
            "DSPEX_EXAMPLE_CONCURRENCY": str(args.example_concurrency),
            "DSPEX_LOG_LEVEL": "WARNING",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        try:
            asyncio.run(run(args, server.url, env, Path(tmp)))
        except Exception:
            for log in sorted(Path(tmp).glob("*.log")):
                print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
            raise


if __name__ == "__main__":
    main()
