"""Helpers of the registry tests: event builders, the settings the service runs with in
tests, a bus client that records announcements, and waiting for a condition."""

from __future__ import annotations

import asyncio
import inspect
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext

from dspex_contracts import (
    CandidateScored,
    CandidateScoredPayload,
    DatasetRef,
    Envelope,
    OptimizeRequested,
    OptimizeRequestedPayload,
    ProgramRef,
    ProgramRegistered,
    ProgramRegisteredPayload,
    ProgramSource,
    ProgramUpdated,
    RunCompleted,
    RunCompletedPayload,
    RunProgress,
    RunProgressPayload,
    RunStatus,
    UsageInfo,
    call_id_for,
)
from dspex_registry import RegistrySettings
from dspex_runtime.testing.nats import NatsServer

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "math_qa"
POSTGRES_URL = os.environ.get("DSPEX_TEST_POSTGRES_URL")
WAIT_S = 30.0
TRAIN = [{"question": "What is 2 + 2?", "answer": 4}, {"question": "What is 3 * 3?", "answer": 9}]


def unique_schema() -> str:
    """A PostgreSQL schema no other test run uses (the database may be shared)."""
    return f"dspex_test_{uuid.uuid4().hex[:12]}"


async def eventually(check: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy, and return it."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def registry_settings(server: NatsServer, database_url: str, **extra: Any) -> RegistrySettings:
    values: dict[str, Any] = {
        "nats_url": server.url,
        "http_port": 0,
        "database_url": database_url,
        "ack_wait_s": 10.0,
        "max_deliver": 3,
        "backoff_s": [0.1],
        "concurrency": 8,
        "nats_reconnect_wait_s": 0.2,
        "log_level": "WARNING",
    }
    values.update(extra)
    return RegistrySettings(**values)


def spec_data(name: str = "qa", instructions: str = "Answer the question.") -> dict[str, Any]:
    return {
        "name": name,
        "stages": [
            {
                "name": "solve",
                "module": "predict",
                "signature": {
                    "inputs": [{"name": "question"}],
                    "outputs": [{"name": "answer", "type": "int"}],
                    "instructions": instructions,
                },
            }
        ],
        "variables": {
            "variables": [
                {"name": "instructions", "kind": "text", "path": "solve.instructions"},
            ]
        },
    }


def registered(spec: dict[str, Any], **extra: Any) -> ProgramRegistered:
    return ProgramRegistered.create(ProgramRegisteredPayload(spec=spec, **extra))


def requested(
    run_id: str, program: str = "qa", *, apply: bool = True, inline: dict[str, Any] | None = None
) -> OptimizeRequested:
    source = ProgramSource(spec=inline) if inline else ProgramSource(ref=ProgramRef(name=program))
    return OptimizeRequested.create(
        OptimizeRequestedPayload(
            run_id=run_id,
            program=source,
            trainset=DatasetRef(examples=TRAIN),
            metric="exact_match",
            strategy="bootstrap",
            seed=7,
            apply=apply,
            budget={"max_lm_calls": 100},
        )
    )


def progress(run_id: str, status: RunStatus = RunStatus.RUNNING, **extra: Any) -> RunProgress:
    return RunProgress.create(
        RunProgressPayload(run_id=run_id, status=status, strategy="bootstrap", **extra)
    )


def scored(run_id: str, n: int, score: float = 0.5) -> CandidateScored:
    return CandidateScored.create(
        CandidateScoredPayload(
            run_id=run_id,
            call_id=call_id_for(run_id, n),
            candidate_id=f"c{n}",
            score=score,
            usage=UsageInfo(calls=2, cost_usd=0.01),
            latency_s=0.1,
        )
    )


def completed(
    run_id: str,
    program: str = "qa",
    version: int | None = 1,
    *,
    apply: bool = True,
    status: RunStatus = RunStatus.COMPLETED,
    baseline: float | None = 0.4,
    best: float | None = 0.8,
    overrides: dict[str, Any] | None = None,
) -> RunCompleted:
    return RunCompleted.create(
        RunCompletedPayload(
            run_id=run_id,
            status=status,
            stop_reason="finished",
            program=ProgramRef(name=program, version=version),
            baseline_score=baseline,
            best_score=best,
            best_candidate_id="c1",
            best_overrides=(
                overrides
                if overrides is not None
                else {"solve.instructions": "Answer with a number only."}
            ),
            usage=UsageInfo(calls=40, cached_calls=4, cost_usd=0.2),
            evaluations=5,
            wall_s=12.5,
            apply=apply,
        )
    )


@dataclass
class Bus:
    """Another system on the bus: publishes events and records what the registry says."""

    nc: Client
    js: JetStreamContext
    updates: list[ProgramUpdated] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, event: Envelope[Any], msg_id: str | None = None) -> Any:
        """Publish ``event``; another ``msg_id`` than its id makes JetStream store it again,
        as a redelivery after the de-duplication window would look to a consumer."""
        headers = {"Nats-Msg-Id": msg_id or event.id}
        return await self.js.publish(
            event.SUBJECT, event.model_dump_json().encode(), headers=headers
        )

    async def settled(self, stream: str, durable: str) -> None:
        """Wait until the registry's consumer ``durable`` has handled (acked) every message
        its stream holds: what it will ever record from them is recorded."""

        async def done() -> bool:
            info = await self.js.consumer_info(stream, durable)
            return info.num_pending == 0 and info.num_ack_pending == 0

        await eventually(done, f"consumer {durable} to catch up")

    async def update(self, name: str, version: int) -> ProgramUpdated:
        def found() -> ProgramUpdated | None:
            for u in self.updates:
                if (u.payload.name, u.payload.version) == (name, version):
                    return u
            return None

        found_update: ProgramUpdated = await eventually(found, f"ProgramUpdated {name} v{version}")
        return found_update
