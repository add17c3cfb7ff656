"""Helpers of the runtime tests: a tiny echo service built with ServiceRuntime, served in the
test's event loop, and a raw nats-py client that talks to it like any other system."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from nats.aio.client import Client
from nats.js import JetStreamContext

from dspex_contracts import (
    ExecuteCompleted,
    ExecuteCompletedPayload,
    ExecuteRequested,
    ProgramRef,
    UsageInfo,
    subjects,
)
from dspex_runtime import DeadLetter, Delivery, ServiceRuntime, ServiceSettings
from dspex_runtime.testing.nats import NatsServer

DURABLE = "echo"
WAIT_S = 20.0  # upper bound for anything to happen; tests pass as soon as it does


def request(mode: str = "ok", **inputs: Any) -> ExecuteRequested:
    """An ExecuteRequested whose inputs tell the echo handler what to do."""
    return ExecuteRequested.model_validate(
        {
            "type": "ExecuteRequested",
            "version": 1,
            "correlation_id": "corr-1",
            "payload": {"program": {"ref": {"name": "echo"}}, "inputs": {"mode": mode, **inputs}},
        }
    )


def completed_for(event: ExecuteRequested) -> ExecuteCompleted:
    return ExecuteCompleted.create(
        ExecuteCompletedPayload(
            request_id=event.id,
            program=ProgramRef(name="echo"),
            outputs=event.payload.inputs,
            usage=UsageInfo(),
            latency_s=0.0,
        ),
        causation=event,
    )


@dataclass
class Gate:
    """Handlers in "gather" mode wait here until ``n`` of them run at once: they finish only
    if the runtime really handles that many messages concurrently (across replicas, when
    the gate is shared)."""

    active: int = 0
    peak: int = 0

    async def gather(self, n: int) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            deadline = asyncio.get_running_loop().time() + WAIT_S
            while self.peak < n:
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"only {self.peak} of {n} handlers ran at once")
                await asyncio.sleep(0.01)
        finally:
            self.active -= 1


@dataclass
class Echo:
    """The echo service: what it was asked, and how often, by request id."""

    runtime: ServiceRuntime
    gate: Gate = field(default_factory=Gate)
    attempts: Counter[str] = field(default_factory=Counter)
    deliveries: dict[str, list[int]] = field(default_factory=dict)

    def register(self) -> None:
        @self.runtime.consumer(ExecuteRequested, durable=DURABLE)
        async def on_request(event: ExecuteRequested, delivery: Delivery) -> None:
            self.attempts[event.id] += 1
            self.deliveries.setdefault(event.id, []).append(delivery.deliveries)
            inputs = event.payload.inputs
            mode = inputs.get("mode")
            if mode == "dead":
                raise DeadLetter("unknown_program", "no program named 'echo-missing'")
            if mode == "flaky" and self.attempts[event.id] <= int(inputs["fail"]):
                raise RuntimeError("transient failure")
            if mode == "always":
                raise RuntimeError("always fails")
            if mode == "gather":
                await self.gate.gather(int(inputs["n"]))
            await self.runtime.publish(completed_for(event))

        @self.runtime.responder(ExecuteRequested, subject=subjects.EXEC_CALL, queue=DURABLE)
        async def on_call(event: ExecuteRequested) -> ExecuteCompleted:
            if event.payload.inputs.get("mode") == "dead":
                raise DeadLetter("unknown_program", "no such program")
            return completed_for(event)


def echo_settings(server: NatsServer, **overrides: Any) -> ServiceSettings:
    values: dict[str, Any] = {
        "service_name": "echo",
        "nats_url": server.url,
        "http_port": 0,
        "ack_wait_s": 5.0,
        "max_deliver": 3,
        "backoff_s": [0.1],
        "max_payload_bytes": 4096,
        "concurrency": 4,
        "nats_reconnect_wait_s": 0.2,
    }
    values.update(overrides)
    return ServiceSettings(**values)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Bus:
    """A raw nats-py client: publishes like any other system and records what comes back."""

    nc: Client
    js: JetStreamContext
    completed: list[ExecuteCompleted] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)

    async def publish(self, body: bytes, *, msg_id: str | None = None) -> Any:
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        return await self.js.publish(subjects.EXEC_REQUESTED, body, headers=headers)

    async def send(self, event: ExecuteRequested) -> None:
        await self.publish(event.model_dump_json().encode(), msg_id=event.id)

    async def wait_completed(self, request_id: str) -> ExecuteCompleted:
        async def seen() -> bool:
            return any(c.payload.request_id == request_id for c in self.completed)

        await eventually(seen, f"ExecuteCompleted for {request_id}")
        return next(c for c in self.completed if c.payload.request_id == request_id)

    async def wait_dead(self, count: int) -> list[dict[str, Any]]:
        async def enough() -> bool:
            return len(self.dead) >= count

        await eventually(enough, f"{count} dead letters")
        return self.dead

    async def settled(self) -> Any:
        """Consumer info once nothing is pending or unacknowledged."""
        info: Any = None

        async def idle() -> bool:
            nonlocal info
            info = await self.js.consumer_info("DSPEX_EXEC", DURABLE)
            return bool(info.num_pending == 0 and info.num_ack_pending == 0)

        await eventually(idle, "the consumer to settle")
        return info


@dataclass
class Running:
    echo: Echo
    bus: Bus
    http: aiohttp.ClientSession
    base_url: str
