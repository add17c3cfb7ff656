"""Helpers of the crash tests: kill and restart one child of the stack, start the reference
optimization request, count a run's events in the candidate stream, and wait for the first
scores of a run."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from dspex_client import DSPExClient, processes
from dspex_client.processes import Child
from dspex_client.stack import SERVICES, Stack
from dspex_contracts import DatasetRef, EvaluationSettings, RunCompletedPayload, subjects

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "math_qa"
CANDIDATE_STREAM = "DSPEX_CANDIDATE"
# Small enough to be quick, batched enough for several proposals per evaluation.
EVALUATION = EvaluationSettings(batch_size=4, concurrency=4)
SEED = 7


def examples(name: str, start: int, count: int) -> list[dict[str, Any]]:
    """``count`` rows of ``examples/math_qa/<name>.jsonl`` from row ``start``."""
    lines = (EXAMPLE / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[start : start + count]]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def running(stack: Stack, kind: str) -> list[Child]:
    return [c for c in stack.services if c.kind == kind and c.running]


def kill(child: Child) -> None:
    """SIGKILL: no drain, no nak, nothing acknowledged that was not already."""
    child.process.kill()
    child.process.wait()


async def restart(stack: Stack, child: Child, suffix: str) -> Child:
    """A new replica of ``child``'s kind with the environment the supervisor gives that kind
    (its own log file and HTTP port), registered with the stack so that it is stopped too.
    Spawned from the calling (main) thread: a child is sent SIGTERM when the thread that
    started it ends, so only the wait for readiness runs in a worker thread."""
    port = processes.free_port()
    env = processes.environment(stack.service_env(child.kind, port))
    replacement = processes.spawn(
        f"{child.name}-{suffix}",
        child.kind,
        processes.python_module(SERVICES[child.kind]),
        log_dir=stack.log_dir,
        env=env,
        url=f"http://127.0.0.1:{port}",
        http_port=port,
    )
    stack.services.append(replacement)
    await asyncio.to_thread(processes.wait_ready, [replacement], timeout_s=90.0)
    return replacement


async def start_run(client: DSPExClient, run_id: str, train: DatasetRef, val: DatasetRef) -> str:
    """The reference request: random search, seed 7, batched evaluations."""
    return await client.start_optimization(
        "math_qa",
        train,
        val,
        metric="numeric",
        strategy="random",
        seed=SEED,
        params={"n_candidates": 6},
        evaluation=EVALUATION,
        run_id=run_id,
    )


async def run_events(js: JetStreamContext, subject: str, run_id: str) -> list[dict[str, Any]]:
    """Every event on ``subject`` of ``run_id`` stored in the candidate stream, oldest first
    (an ordered consumer from the stream's start, read until nothing is pending)."""
    config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
    sub = await js.subscribe(subject, stream=CANDIDATE_STREAM, ordered_consumer=True, config=config)
    found: list[dict[str, Any]] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=5.0)
            except (TimeoutError, nats.errors.TimeoutError):
                break  # an empty subject: nothing was ever delivered
            event = json.loads(msg.data)
            if event["payload"]["run_id"] == run_id:
                found.append(event)
            if msg.metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return found


async def call_counts(js: JetStreamContext, run_id: str) -> tuple[set[str], Counter[str]]:
    """The call ids ``run_id`` proposed, and how many CandidateScored each call id has."""
    proposed = await run_events(js, subjects.CANDIDATE_PROPOSED, run_id)
    scored = await run_events(js, subjects.CANDIDATE_SCORED, run_id)
    return (
        {e["payload"]["call_id"] for e in proposed},
        Counter(e["payload"]["call_id"] for e in scored),
    )


async def wait_scored(js: JetStreamContext, run_id: str, count: int, timeout_s: float) -> int:
    """Wait until ``count`` CandidateScored of ``run_id`` are on the bus; how many were."""
    config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
    sub = await js.subscribe(
        subjects.CANDIDATE_SCORED, stream=CANDIDATE_STREAM, ordered_consumer=True, config=config
    )
    seen = 0
    deadline = time.monotonic() + timeout_s
    try:
        while seen < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{seen} of {count} CandidateScored of {run_id} seen")
            try:
                msg = await sub.next_msg(timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            if json.loads(msg.data)["payload"]["run_id"] == run_id:
                seen += 1
    finally:
        await sub.unsubscribe()
    return seen


def outcome(p: RunCompletedPayload) -> dict[str, Any]:
    """What a run under faults must reproduce exactly (usage and wall time may differ)."""
    return {
        "status": p.status.value,
        "stop_reason": p.stop_reason,
        "best_overrides": p.best_overrides,
        "best_assignment": p.best_assignment,
        "best_score": p.best_score,
        "baseline_score": p.baseline_score,
        "evaluations": p.evaluations,
    }
