"""Helpers of the kernel service tests: a caller on the bus that records every answer, and
the settings the tests run the service with."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext

from dspex_contracts import ExecuteCompleted, ExecuteFailed, ExecuteRequested, subjects
from dspex_kernel import ProgramSpec
from dspex_kernel_service import KernelSettings
from dspex_runtime.programs import InMemoryProgramStore
from dspex_runtime.testing.nats import NatsServer
from dspex_simlm import PRICES

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "math_qa"
WAIT_S = 30.0


async def eventually(check: Any, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Caller:
    """Another system on the bus: publishes requests and records every answer."""

    nc: Client
    js: JetStreamContext
    completed: list[ExecuteCompleted] = field(default_factory=list)
    failed: list[ExecuteFailed] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)

    async def publish(
        self, body: bytes, msg_id: str | None = None, headers: dict[str, str] | None = None
    ) -> Any:
        all_headers = dict(headers or {})
        if msg_id:
            all_headers["Nats-Msg-Id"] = msg_id
        return await self.js.publish(subjects.EXEC_REQUESTED, body, headers=all_headers or None)

    async def send(self, event: ExecuteRequested, headers: dict[str, str] | None = None) -> Any:
        return await self.publish(event.model_dump_json().encode(), event.id, headers)

    async def answer_to(self, request_id: str) -> ExecuteCompleted | ExecuteFailed:
        def found() -> bool:
            return any(a.payload.request_id == request_id for a in [*self.completed, *self.failed])

        await eventually(found, f"an answer to {request_id}")
        return next(
            a for a in [*self.completed, *self.failed] if a.payload.request_id == request_id
        )

    async def dead_letters(self, count: int) -> list[dict[str, Any]]:
        await eventually(lambda: len(self.dead) >= count, f"{count} dead letters")
        return self.dead


@dataclass
class Kernel:
    url: str
    base_url: str
    client: Caller


def kernel_settings(server: NatsServer, api_base: str, **extra: Any) -> KernelSettings:
    values: dict[str, Any] = {
        "nats_url": server.url,
        "http_port": 0,
        "lm_api_base": api_base,
        "lm_api_key": "sk-test",
        "lm_prices": PRICES,
        "max_payload_bytes": 64 * 1024,
        "ack_wait_s": 10.0,
        "max_deliver": 3,
        "backoff_s": [0.1],
        "concurrency": 8,
        "nats_reconnect_wait_s": 0.2,
    }
    values.update(extra)
    return KernelSettings(**values)


def example_store() -> InMemoryProgramStore:
    return InMemoryProgramStore([ProgramSpec.load(EXAMPLE / "program.yaml")])
