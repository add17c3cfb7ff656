"""RegistryClient against a real nats-server and a fake registry that answers from a dict
and counts requests: caching, invalidation by ProgramUpdated, the TTL of "latest", errors,
and an answer that raced an announcement."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from dspex_contracts import (
    REGISTRY_RPC_PREFIX,
    ProgramUpdated,
    ProgramUpdatedPayload,
    registry_subject,
    subjects,
)
from dspex_runtime.registry_client import (
    RegistryClient,
    RegistryError,
    RegistryUnavailable,
    UnknownProgram,
    UnknownRun,
)
from dspex_runtime.testing.nats import NatsServer

pytestmark = pytest.mark.integration


def spec(name: str, version: int) -> dict[str, Any]:
    return {"name": name, "version": version, "stages": []}


@dataclass
class FakeRegistry:
    """Answers registry requests from ``programs``; ``gate``, when set, holds answers back."""

    nc: Client
    programs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    gate: asyncio.Event | None = None
    fail_with: dict[str, Any] | None = None

    async def handle(self, msg: Msg) -> None:
        op = msg.subject.removeprefix(REGISTRY_RPC_PREFIX + ".")
        request = json.loads(msg.data or b"{}")
        self.seen.append((op, request))
        reply = self.answer(op, request)
        if self.gate is not None:
            await self.gate.wait()
        await msg.respond(json.dumps(reply).encode())

    def answer(self, op: str, request: dict[str, Any]) -> dict[str, Any]:
        if self.fail_with is not None:
            return {"ok": False, "error": self.fail_with}
        if op == "program.get":
            versions = self.programs.get(request["name"], [])
            number = request.get("version") or len(versions)
            if not 1 <= number <= len(versions):
                return {"ok": False, "error": {"code": "unknown_program", "message": "none"}}
            data = {"name": request["name"], "version": number, "spec": versions[number - 1]}
            return {"ok": True, "data": {**data, "created_at": "2026-11-01T00:00:00Z"}}
        if op == "run.get":
            return {"ok": False, "error": {"code": "unknown_run", "message": "no run"}}
        if op == "run.list":
            return {"ok": True, "data": []}
        return {"ok": False, "error": {"code": "invalid_request", "message": op}}

    def register(self, name: str) -> int:
        versions = self.programs.setdefault(name, [])
        versions.append(spec(name, len(versions) + 1))
        return len(versions)

    def gets(self) -> int:
        return sum(1 for op, _ in self.seen if op == "program.get")


@dataclass
class Setup:
    nc: Client
    fake: FakeRegistry
    client: RegistryClient
    now: list[float]

    async def announce(self, name: str, version: int) -> None:
        event = ProgramUpdated.create(
            ProgramUpdatedPayload(name=name, version=version, spec=spec(name, version))
        )
        await self.nc.publish(subjects.PROGRAM_UPDATED, event.model_dump_json().encode())
        await self.nc.flush()


@pytest.fixture
async def setup(nats_server: NatsServer) -> AsyncIterator[Setup]:
    nc = await nats.connect(nats_server.url)
    fake = FakeRegistry(nc)
    await nc.subscribe(f"{REGISTRY_RPC_PREFIX}.>", cb=fake.handle)
    now = [0.0]
    client = RegistryClient(nc, timeout_s=2.0, latest_ttl_s=60.0, clock=lambda: now[0])
    await client.start()
    try:
        yield Setup(nc, fake, client, now)
    finally:
        await client.close()
        await nc.close()


async def eventually(check: Any, what: str) -> None:
    for _ in range(400):
        if check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"timed out waiting for {what}")


async def test_versions_and_latest_are_cached(setup: Setup) -> None:
    setup.fake.register("qa")
    assert await setup.client.get_program("qa") == spec("qa", 1)
    assert await setup.client.get_program("qa") == spec("qa", 1)
    assert await setup.client.get_program("qa", 1) == spec("qa", 1)  # known from "latest"
    assert setup.fake.gets() == 1
    assert setup.fake.seen[0] == ("program.get", {"name": "qa"})


async def test_an_announcement_drops_the_latest_version(setup: Setup) -> None:
    setup.fake.register("qa")
    assert (await setup.client.get_program("qa"))["version"] == 1
    setup.fake.register("qa")
    assert (await setup.client.get_program("qa"))["version"] == 1  # not announced yet
    await setup.announce("qa", 2)
    await eventually(lambda: "qa" not in setup.client._latest, "the announcement")
    assert (await setup.client.get_program("qa"))["version"] == 2
    assert setup.fake.gets() == 2


async def test_the_latest_version_expires_after_its_ttl(setup: Setup) -> None:
    setup.fake.register("qa")
    await setup.client.get_program("qa")
    setup.fake.register("qa")
    setup.now[0] = 59.0
    assert (await setup.client.get_program("qa"))["version"] == 1
    setup.now[0] = 61.0
    assert (await setup.client.get_program("qa"))["version"] == 2
    await setup.client.get_program("qa", 1)  # exact versions never expire
    assert setup.fake.gets() == 2


async def test_an_answer_older_than_an_announcement_is_not_kept(setup: Setup) -> None:
    setup.fake.register("qa")
    setup.fake.gate = asyncio.Event()
    pending = asyncio.create_task(setup.client.get_program("qa"))
    await eventually(lambda: setup.fake.gets() == 1, "the request")
    setup.fake.register("qa")
    await setup.announce("qa", 2)
    await eventually(lambda: setup.client._generation.get("qa") == 1, "the announcement")
    setup.fake.gate.set()
    assert (await pending)["version"] == 1
    assert (await setup.client.get_program("qa"))["version"] == 2


async def test_returned_specs_are_the_callers_own(setup: Setup) -> None:
    setup.fake.register("qa")
    first = await setup.client.get_program("qa")
    first["stages"].append("mutated")
    assert await setup.client.get_program("qa") == spec("qa", 1)


async def test_errors_carry_the_registrys_codes(setup: Setup) -> None:
    with pytest.raises(UnknownProgram) as unknown:
        await setup.client.get_program("nope")
    assert (unknown.value.code, unknown.value.retryable) == ("unknown_program", False)
    with pytest.raises(UnknownRun):
        await setup.client.get_run("run-1")
    assert await setup.client.list_runs(status="running", limit=5) == []
    assert setup.fake.seen[-1] == ("run.list", {"status": "running", "limit": 5})
    setup.fake.fail_with = {"code": "internal_error", "message": "db down", "retryable": True}
    with pytest.raises(RegistryUnavailable) as down:
        await setup.client.get_run("run-1")
    assert down.value.retryable
    assert down.value.code == "internal_error"
    setup.fake.fail_with = {"code": "something_new", "message": "?"}
    with pytest.raises(RegistryError) as other:
        await setup.client.list_programs()
    assert other.value.code == "something_new"
    assert not other.value.retryable


async def test_no_registry_is_a_retryable_error(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        client = RegistryClient(nc, timeout_s=0.5)
        with pytest.raises(RegistryUnavailable) as nobody:
            await client.get_program("qa")
        assert nobody.value.retryable
        assert nobody.value.code == "registry_unavailable"

        async def silent(msg: Msg) -> None:
            pass  # subscribed, never answers: a timeout rather than "no responders"

        await nc.subscribe(registry_subject("run.get"), cb=silent)
        with pytest.raises(RegistryUnavailable, match=r"did not answer run\.get"):
            await client.get_run("run-1")
        await client.close()
    finally:
        await nc.close()
