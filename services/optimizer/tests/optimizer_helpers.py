"""Helpers of the optimizer tests: a small program with a variable space, requests, and a
fake evaluator whose scores follow from the candidate alone — in memory (unit tests) and
on the bus (integration tests), idempotent by call id."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from dspex_contracts import (
    Budget,
    CandidateProposed,
    CandidateProposedPayload,
    CandidateScored,
    CandidateScoredPayload,
    DatasetRef,
    Envelope,
    EvaluationSettings,
    ExampleScore,
    OptimizeRequested,
    OptimizeRequestedPayload,
    ProgramSource,
    RunCompleted,
    RunProgress,
    UsageInfo,
    subjects,
)
from dspex_optimizer import Optimizer, OptimizerSettings, create_app
from dspex_optimizer.handlers import parse_call_id
from dspex_optimizer.ports import RunStore
from dspex_runtime.testing.nats import NatsServer
from dspex_runtime.testing.serving import serve_started

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
WAIT_S = 60.0

SPEC: dict[str, Any] = {
    "name": "qa",
    "stages": [{"name": "answer", "module": "predict", "signature": "question -> answer"}],
    "variables": {
        "variables": [
            {
                "name": "temperature",
                "kind": "float",
                "path": "*.temperature",
                "low": 0.0,
                "high": 1.0,
                "initial": 0.0,
            },
            {
                "name": "module",
                "kind": "choice",
                "path": "answer.module",
                "choices": ["predict", "chain_of_thought"],
                "initial": "predict",
            },
        ]
    },
}
EXAMPLES = [{"question": f"What is {i} plus 1?", "answer": str(i + 1)} for i in range(12)]


async def eventually(check: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def request(
    run_id: str,
    *,
    strategy: str = "random",
    seed: int = 7,
    budget: Budget | None = None,
    batch_size: int = 32,
    concurrency: int | None = None,
    params: dict[str, Any] | None = None,
    program: ProgramSource | None = None,
    trainset: DatasetRef | None = None,
) -> OptimizeRequested:
    return OptimizeRequested.create(
        OptimizeRequestedPayload(
            run_id=run_id,
            program=program or ProgramSource(spec=SPEC),
            trainset=trainset or DatasetRef(examples=EXAMPLES),
            metric="exact_match",
            strategy=strategy,
            strategy_params=params if params is not None else {"n_candidates": 6},
            seed=seed,
            budget=budget or Budget(),
            evaluation=EvaluationSettings(batch_size=batch_size, concurrency=concurrency),
        )
    )


def fake_score(candidate: dict[str, Any], index: int) -> float:
    """Deterministic: a temperature near 0.3 and chain of thought score best, and each
    example is passed or failed by a fixed hash of (example, candidate)."""
    temperature = float(candidate.get("temperature", 0.0))
    thinking = candidate.get("module") == "chain_of_thought"
    quality = 1.0 - abs(temperature - 0.3) - (0.0 if thinking else 0.2)
    text = json.dumps(candidate, sort_keys=True) + f"#{index}"
    luck = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return 1.0 if luck < quality else 0.0


def answer(proposal: CandidateProposedPayload) -> CandidateScored:
    candidate = {**proposal.assignment, **proposal.overrides}
    results = [
        ExampleScore(
            index=i,
            score=fake_score(candidate, i),
            outputs={"answer": "x"},
            usage=UsageInfo(calls=1, prompt_tokens=10, completion_tokens=2, cost_usd=0.001),
        )
        for i in proposal.example_indices
    ]
    return CandidateScored.create(
        CandidateScoredPayload(
            run_id=proposal.run_id,
            call_id=proposal.call_id,
            candidate_id=proposal.candidate_id,
            results=results,
            score=sum(r.score for r in results) / len(results),
            usage=UsageInfo(
                calls=len(results),
                prompt_tokens=10 * len(results),
                completion_tokens=2 * len(results),
                cost_usd=0.001 * len(results),
            ),
            latency_s=0.01,
        )
    )


@dataclass
class MemoryBus:
    """``publish`` for unit tests: records every event and answers proposals at once (as an
    evaluator and the optimizer's scores consumer together would) while ``answering``."""

    store: RunStore
    answering: bool = True
    events: list[Envelope[Any]] = field(default_factory=list)
    held: list[CandidateProposed] = field(default_factory=list)
    answered: Counter[str] = field(default_factory=Counter)

    async def publish(self, event: Envelope[Any]) -> None:
        self.events.append(event)
        if isinstance(event, CandidateProposed):
            if self.answering:
                await self.answer(event)
            else:
                self.held.append(event)

    async def answer(self, proposal: CandidateProposed) -> None:
        if self.answered[proposal.id]:  # idempotent by call id, like a deduplicated stream
            return
        self.answered[proposal.id] += 1
        scored = answer(proposal.payload).payload
        where = parse_call_id(scored.run_id, scored.call_id)
        assert where is not None
        await self.store.record_scored(scored.run_id, *where, scored.model_dump_json().encode())

    async def release(self) -> None:
        self.answering = True
        held, self.held = self.held, []
        for proposal in held:
            await self.answer(proposal)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@dataclass
class BusEvaluator:
    """A fake evaluator replica on a real nats-server: a durable pull consumer of
    CandidateProposed that answers each one (after ``delay_s``) with CandidateScored,
    whose id JetStream de-duplicates."""

    nc: Client
    js: JetStreamContext
    delay_s: float = 0.0
    proposals: list[CandidateProposed] = field(default_factory=list)
    paused: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def start(self, durable: str = "fake-evaluator") -> None:
        self.paused.set()
        sub = await self.js.pull_subscribe(
            subjects.CANDIDATE_PROPOSED,
            durable=durable,
            config=ConsumerConfig(ack_wait=30, deliver_policy=DeliverPolicy.ALL),
        )
        self._task = asyncio.create_task(self._loop(sub))

    async def _loop(self, sub: JetStreamContext.PullSubscription) -> None:
        while True:
            await self.paused.wait()
            try:
                messages = await sub.fetch(8, timeout=0.5)
            except TimeoutError:
                continue
            await asyncio.gather(*(self._one(m) for m in messages))

    async def _one(self, msg: Msg) -> None:
        proposal = CandidateProposed.model_validate_json(msg.data)
        self.proposals.append(proposal)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        scored = answer(proposal.payload)
        await self.js.publish(
            subjects.CANDIDATE_SCORED,
            scored.model_dump_json().encode(),
            headers={"Nats-Msg-Id": scored.id},
        )
        await msg.ack()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def stream_events(js: JetStreamContext, subject: str) -> list[dict[str, Any]]:
    """Every message stored on ``subject``, oldest first, as JSON."""
    sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
    out: list[dict[str, Any]] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except TimeoutError:
                return out
            out.append(json.loads(msg.data))
    finally:
        await sub.unsubscribe()


@dataclass
class RunWatcher:
    """A client of runs on the bus: publishes requests and commands, records every
    RunProgress and RunCompleted."""

    nc: Client
    js: JetStreamContext
    progress: list[RunProgress] = field(default_factory=list)
    completed: list[RunCompleted] = field(default_factory=list)

    async def start(self) -> RunWatcher:
        async def on_progress(msg: Msg) -> None:
            self.progress.append(RunProgress.model_validate_json(msg.data))

        async def on_completed(msg: Msg) -> None:
            self.completed.append(RunCompleted.model_validate_json(msg.data))

        await self.nc.subscribe(subjects.RUN_PROGRESS, cb=on_progress)
        await self.nc.subscribe(subjects.RUN_COMPLETED, cb=on_completed)
        return self

    async def send(self, event: Envelope[Any]) -> None:
        body = event.model_dump_json().encode()
        await self.js.publish(event.SUBJECT, body, headers={"Nats-Msg-Id": event.id})

    def progress_of(self, run_id: str) -> list[RunProgress]:
        return [p for p in self.progress if p.payload.run_id == run_id]

    async def completion(self, run_id: str, timeout_s: float = WAIT_S) -> RunCompleted:
        def done() -> bool:
            return any(c.payload.run_id == run_id for c in self.completed)

        await eventually(done, f"the completion of {run_id}", timeout_s)
        return next(c for c in self.completed if c.payload.run_id == run_id)


def optimizer_settings(server: NatsServer, **extra: Any) -> OptimizerSettings:
    values: dict[str, Any] = {
        "nats_url": server.url,
        "http_port": 0,
        "lm_cache": "none",
        "ack_wait_s": 3.0,
        "backoff_s": [0.1],
        "nats_reconnect_wait_s": 0.2,
        "log_level": "WARNING",
    }
    values.update(extra)
    return OptimizerSettings(**values)


@dataclass
class Replica:
    optimizer: Optimizer
    task: asyncio.Task[None]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.optimizer.service.http_port}"

    async def stop(self) -> None:
        server = self.optimizer.service.http_server
        if server is not None:
            server.should_exit = True
        await asyncio.wait_for(self.task, 30)


async def start_replica(settings: OptimizerSettings) -> Replica:
    optimizer, app = create_app(settings)
    return Replica(optimizer, await serve_started(optimizer.service, app))
