"""The run explorer inside the real registry service, on a real nats-server and SQLite: a
recorded run event is announced on core NATS once it is readable, the HTTP API on the
service's port serves it, a server-sent event stream of the run wakes, the explorer can be
switched off, and an action with the operator's token lands on its JetStream stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError
from registry_helpers import (
    Bus,
    completed,
    eventually,
    progress,
    registry_settings,
    scored,
    sqlite_url,
)

from dspex_contracts import PauseRun, RunStatus, subjects
from dspex_registry import create_app
from dspex_registry.adapters.db import SqlRegistryStore
from dspex_registry.adapters.engine import make_engine
from dspex_runtime.service import ServiceRuntime
from dspex_runtime.testing.nats import NatsServer
from dspex_runtime.testing.serving import serve_started, stop_serving

pytestmark = pytest.mark.integration

TOKEN = "operator-s3cret"


@dataclass
class Registry:
    service: ServiceRuntime
    http: httpx.AsyncClient  # on the service's bound port
    store: SqlRegistryStore  # another connection to the service's database


@asynccontextmanager
async def registry(server: NatsServer, tmp_path: Path, **settings: Any) -> AsyncIterator[Registry]:
    url = sqlite_url(tmp_path / "registry.db")
    service, app = create_app(registry_settings(server, url, **settings))
    task = await serve_started(service, app)
    reader = SqlRegistryStore(make_engine(url))
    base_url = f"http://127.0.0.1:{service.http_port}"
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            yield Registry(service, http, reader)
    finally:
        await reader.close()
        await stop_serving(service, task)


async def recorded(store: SqlRegistryStore, run_id: str, evaluations: int) -> bool:
    run = await store.get_run(run_id)
    return run is not None and run.evaluations == evaluations


async def test_a_change_is_announced_once_readable_and_served_over_http(
    nats_server: NatsServer, bus: Bus, tmp_path: Path
) -> None:
    async with registry(nats_server, tmp_path) as reg:
        seen: list[tuple[str, str, Any]] = []

        async def on_notice(msg: Msg) -> None:
            # What a page woken by the notice would read: it must already be there.
            run_id = msg.data.decode()
            run = await reg.store.get_run(run_id)
            history = await reg.store.run_history(run_id)
            candidates = await reg.store.run_candidates(run_id)
            state = (
                run.status.value if run else None,
                run.evaluations if run else None,
                [p.lm_calls for p in history],
                len(candidates),
            )
            seen.append((msg.subject, run_id, state))

        await bus.nc.subscribe(subjects.RUN_CHANGED_NOTICE, cb=on_notice)
        await bus.nc.flush()

        async def announced(count: int) -> tuple[str, str, Any]:
            await eventually(lambda: len(seen) >= count, f"notice {count}", 15)
            return seen[count - 1]

        await bus.send(progress("svc-1", best_score=0.5, evaluations=3, lm_calls=30))
        notice = await announced(1)
        assert notice == (subjects.RUN_CHANGED_NOTICE, "svc-1", ("running", 3, [30], 0))
        await bus.send(scored("svc-1", 1))
        assert (await announced(2))[2] == ("running", 3, [30], 1)
        await bus.send(completed("svc-1", apply=False))
        assert (await announced(3))[2] == ("completed", 5, [30, 40], 1)

        response = await reg.http.get("/api/runs/svc-1")
        assert response.status_code == 200
        view = response.json()
        assert view["run"]["run_id"] == "svc-1"
        assert (view["run"]["status"], view["run"]["evaluations"]) == ("completed", 5)
        assert (view["run"]["best_score"], view["run"]["lm_calls"]) == (0.8, 40)
        assert [(p["status"], p["lm_calls"], p["best_score"]) for p in view["history"]] == [
            ("running", 30, 0.5),
            ("completed", 40, 0.8),
        ]
        assert [c["call_id"] for c in view["candidates"]] == ["svc-1:1"]
        page = await reg.http.get("/ui/runs/svc-1")
        assert page.status_code == 200
        assert 'data-run-id="svc-1"' in page.text
        assert len(seen) == 3  # one notice per recorded event, nothing else


async def test_a_completion_that_cannot_be_applied_is_still_announced(
    nats_server: NatsServer, bus: Bus, tmp_path: Path
) -> None:
    async with registry(nats_server, tmp_path) as reg:
        notices: list[bytes] = []

        async def on_notice(msg: Msg) -> None:
            notices.append(msg.data)

        await bus.nc.subscribe(subjects.RUN_CHANGED_NOTICE, cb=on_notice)
        await bus.nc.flush()
        await bus.send(progress("svc-unapplied", evaluations=1))
        await eventually(lambda: notices, "the progress announced", 15)
        notices.clear()
        # Asks to be applied to program 'qa' version 1, which nobody registered.
        await bus.send(completed("svc-unapplied", apply=True))
        [dead] = await eventually(lambda: bus.dead, "the completion dead-lettered", 15)
        assert dead["payload"]["reason"] == "unknown_program"
        run = await reg.store.get_run("svc-unapplied")
        assert run is not None
        assert run.status is RunStatus.COMPLETED  # recorded: open pages should refresh
        await bus.nc.flush()
        await asyncio.sleep(0.2)
        assert notices == [b"svc-unapplied"]


async def read_event(lines: AsyncIterator[str]) -> dict[str, str]:
    """The next server-sent event's fields (comments, such as pings, skipped)."""
    fields: dict[str, str] = {}
    async for line in lines:
        if not line:
            if fields:
                return fields
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")
    raise AssertionError("the event stream ended")


async def test_an_event_stream_of_a_run_wakes_when_the_run_changes(
    nats_server: NatsServer, bus: Bus, tmp_path: Path
) -> None:
    async with registry(nats_server, tmp_path) as reg:

        async def keep_reporting() -> None:
            # Until the stream has subscribed, a report may come too early: report again.
            for n in range(1, 100):
                await bus.send(progress("svc-other", evaluations=n))
                await bus.send(progress("svc-sse", evaluations=n, lm_calls=10 * n))
                await asyncio.sleep(0.3)

        async with asyncio.timeout(20):
            params = {"run_id": "svc-sse"}
            async with reg.http.stream("GET", "/api/events", params=params) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                reporter = asyncio.create_task(keep_reporting())
                try:
                    lines = response.aiter_lines()
                    first = await read_event(lines)
                    second = await read_event(lines)
                finally:
                    reporter.cancel()
        # Only the run asked for, never the other one reported alongside it.
        assert first == {"event": "changed", "data": "svc-sse"}
        assert second == {"event": "changed", "data": "svc-sse"}
        run = await reg.store.get_run("svc-sse")
        assert run is not None
        assert run.evaluations >= 1


async def test_with_the_explorer_off_only_the_runtime_answers(
    nats_server: NatsServer, bus: Bus, tmp_path: Path
) -> None:
    async with registry(nats_server, tmp_path, ui_enabled=False) as reg:
        notices: list[bytes] = []

        async def on_notice(msg: Msg) -> None:
            notices.append(msg.data)

        await bus.nc.subscribe(subjects.RUN_CHANGED_NOTICE, cb=on_notice)
        for path in ("/ui/runs", "/ui", "/api/runs", "/api/docs", "/static/htmx.min.js"):
            assert (await reg.http.get(path)).status_code == 404, path
        assert (await reg.http.get("/healthz")).status_code == 200
        assert (await reg.http.get("/metrics")).status_code == 200
        # Events are still recorded, but nobody is told: no page could listen.
        await bus.send(progress("svc-off", evaluations=2))
        await eventually(lambda: recorded(reg.store, "svc-off", 2), "the progress recorded")
        await bus.settled("DSPEX_RUN", "registry-progress")
        await bus.nc.flush()
        await asyncio.sleep(0.2)
        assert notices == []


async def test_pausing_with_the_token_publishes_on_the_stream(
    nats_server: NatsServer, bus: Bus, tmp_path: Path
) -> None:
    stream = subjects.stream_for(subjects.RUN_PAUSE)
    async with registry(nats_server, tmp_path, ui_token=TOKEN) as reg:
        await bus.send(progress("svc-pause", RunStatus.RUNNING, evaluations=1))
        await eventually(lambda: recorded(reg.store, "svc-pause", 1), "the progress recorded")
        wrong = await reg.http.post(
            "/api/runs/svc-pause/pause", headers={"Authorization": "Bearer wrong"}
        )
        assert wrong.status_code == 401
        with pytest.raises(NotFoundError):
            await bus.js.get_last_msg(stream, subjects.RUN_PAUSE)

        response = await reg.http.post(
            "/api/runs/svc-pause/pause", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert response.status_code == 200, response.text
        done = response.json()
        assert (done["run_id"], done["action"]) == ("svc-pause", "pause")
        # The response comes after the stream confirmed the command.
        stored = await bus.js.get_last_msg(stream, subjects.RUN_PAUSE)
        assert stored.subject == "dspex.run.pause.v1"
        assert stored.data is not None
        event = PauseRun.model_validate_json(stored.data)
        assert event.id == done["event_id"]
        assert event.payload.run_id == "svc-pause"
        assert event.payload.requested_by == "run-explorer"
        assert stored.headers is not None
        assert stored.headers["Nats-Msg-Id"] == event.id
        info = await bus.js.stream_info(stream, subjects_filter=subjects.RUN_PAUSE)
        assert info.state.subjects == {subjects.RUN_PAUSE: 1}
