"""Helpers of the evaluator service tests: an optimizer-like client on the bus that records
what the streams store, proposals for the bundled math_qa example, and running replicas."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck

from dspex_contracts import (
    CandidateProposed,
    CandidateProposedPayload,
    CandidateScored,
    DatasetRef,
    LMSettings,
    ProgramRef,
    ProgramSource,
    call_id_for,
    registry_subject,
    subjects,
)
from dspex_evaluator import EvaluatorSettings, create_app
from dspex_kernel import ProgramSpec, load_examples
from dspex_runtime.programs import InMemoryProgramStore
from dspex_runtime.service import ServiceRuntime
from dspex_runtime.testing.nats import NatsServer
from dspex_runtime.testing.serving import serve_started
from dspex_simlm import PRICES

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "math_qa"
WAIT_S = 60.0
RUN = "run-test"


async def eventually(check: Any, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def math_qa() -> ProgramSpec:
    return ProgramSpec.load(EXAMPLE / "program.yaml")


def dev_examples() -> list[dict[str, Any]]:
    return load_examples(EXAMPLE / "dev.jsonl")


def train_examples() -> list[dict[str, Any]]:
    return load_examples(EXAMPLE / "train.jsonl")


def proposal(
    call: int,
    dataset: DatasetRef,
    indices: Sequence[int],
    *,
    run_id: str = RUN,
    program: ProgramSource | None = None,
    metric: str = "numeric",
    assignment: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    lm: LMSettings | None = None,
) -> CandidateProposed:
    return CandidateProposed.create(
        CandidateProposedPayload(
            run_id=run_id,
            call_id=call_id_for(run_id, call),
            candidate_id=f"c{call:04d}",
            program=program or ProgramSource(ref=ProgramRef(name="math_qa")),
            assignment=dict(assignment or {}),
            overrides=dict(overrides or {}),
            dataset=dataset,
            example_indices=list(indices),
            lm=lm or LMSettings(),
            metric=metric,
        )
    )


@dataclass
class Optimizer:
    """Another system on the bus: publishes proposals and records what the streams store
    (not what is merely published: JetStream drops duplicates before storing)."""

    nc: Client
    js: JetStreamContext
    scored: list[CandidateScored] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)

    async def start(self) -> Optimizer:
        async def on_scored(msg: Msg) -> None:
            self.scored.append(CandidateScored.model_validate_json(msg.data))

        async def on_dead(msg: Msg) -> None:
            self.dead.append(json.loads(msg.data))

        await self.js.subscribe(subjects.CANDIDATE_SCORED, cb=on_scored, ordered_consumer=True)
        await self.js.subscribe(subjects.DEAD_LETTER, cb=on_dead, ordered_consumer=True)
        return self

    async def send(self, event: CandidateProposed, msg_id: str | None = None) -> PubAck:
        return await self.js.publish(
            subjects.CANDIDATE_PROPOSED,
            event.model_dump_json().encode(),
            headers={"Nats-Msg-Id": msg_id or event.id},
        )

    def answers_to(self, event: CandidateProposed) -> list[CandidateScored]:
        return [s for s in self.scored if s.payload.call_id == event.payload.call_id]

    async def answer_to(self, event: CandidateProposed) -> CandidateScored:
        await eventually(lambda: self.answers_to(event), f"an answer to {event.id}")
        return self.answers_to(event)[0]

    async def handled_up_to(self, seq: int) -> None:
        """Wait until the evaluators have settled every proposal up to stream ``seq``."""
        done = False

        async def check() -> None:
            nonlocal done
            info = await self.js.consumer_info("DSPEX_CANDIDATE", "evaluator")
            done = info.ack_floor.stream_seq >= seq

        deadline = asyncio.get_running_loop().time() + WAIT_S
        while not done:
            assert asyncio.get_running_loop().time() < deadline, f"proposal {seq} unsettled"
            await check()
            await asyncio.sleep(0.05)


@dataclass
class FakeRegistry:
    """The registry's ``program.get`` over request/reply, serving math_qa v1 only."""

    nc: Client
    gets: list[dict[str, Any]] = field(default_factory=list)

    async def start(self) -> FakeRegistry:
        await self.nc.subscribe(registry_subject("program.get"), cb=self.handle)
        return self

    async def handle(self, msg: Msg) -> None:
        request = json.loads(msg.data)
        self.gets.append(request)
        if request["name"] == "math_qa" and request.get("version") in (None, 1):
            info = {"name": "math_qa", "version": 1, "spec": math_qa().to_data()}
            reply: dict[str, Any] = {
                "ok": True,
                "data": {**info, "created_at": "2026-11-25T12:00:00Z"},
            }
        else:
            reply = {"ok": False, "error": {"code": "unknown_program", "message": "no such"}}
        await msg.respond(json.dumps(reply).encode())


def evaluator_settings(server: NatsServer, api_base: str, **extra: Any) -> EvaluatorSettings:
    values: dict[str, Any] = {
        "nats_url": server.url,
        "http_port": 0,
        "lm_api_base": api_base,
        "lm_api_key": "sk-test",
        "lm_prices": PRICES,
        "lm_cache": "none",
        "ack_wait_s": 10.0,
        "max_deliver": 3,
        "backoff_s": [0.1],
        "concurrency": 4,
        "example_concurrency": 8,
        "nats_reconnect_wait_s": 0.2,
    }
    values.update(extra)
    return EvaluatorSettings(**values)


@dataclass
class Replica:
    service: ServiceRuntime
    task: asyncio.Task[None]

    def handled(self) -> float:
        value = self.service.registry.get_sample_value(
            "dspex_messages_handled_total",
            {"service": "evaluator", "subject": subjects.CANDIDATE_PROPOSED, "outcome": "ok"},
        )
        return value or 0.0

    async def stop(self) -> None:
        assert self.service.http_server is not None
        self.service.http_server.should_exit = True
        await asyncio.wait_for(self.task, 30)


async def start_replica(settings: EvaluatorSettings, *, registry: bool = False) -> Replica:
    """A replica serving math_qa from memory, or (``registry``) reading the registry."""
    programs = None if registry else InMemoryProgramStore([math_qa()])
    service, app = create_app(settings, programs=programs)
    return Replica(service, await serve_started(service, app))
