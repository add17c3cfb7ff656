"""The runtime's ASGI app with a fallback: its own routes match exact paths and win, every
other HTTP request goes to the service's web app, and without one the answer is 404. Called
in-process (no lifespan, so no broker connection is needed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import pytest
from faststream.asgi.types import Receive, Scope, Send

from dspex_runtime import ServiceRuntime, ServiceSettings
from dspex_runtime.asgi import ServiceApp

pytestmark = pytest.mark.unit


class Recorder:
    """A fallback app that answers 200 with the path it was given, and remembers it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        body = f"fallback {scope['method']} {scope['path']}?{scope['query_string'].decode()}"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})


def runtime() -> ServiceRuntime:
    return ServiceRuntime(ServiceSettings(service_name="probe", http_port=0))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(recorder: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    app = runtime().asgi_app(fallback=recorder)
    assert isinstance(app, ServiceApp)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as c:
        yield c


async def test_exact_routes_win_over_the_fallback(
    client: httpx.AsyncClient, recorder: Recorder
) -> None:
    health = await client.get("/healthz")
    assert (health.status_code, health.text) == (200, "ok")
    assert (await client.get("/healthz?verbose=1")).text == "ok"  # the query is not the path
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.text) == (503, "starting")  # not subscribed: never started
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert "# TYPE" in metrics.text
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "DSPEx probe AsyncAPI" in docs.text
    assert recorder.paths == []


@pytest.mark.parametrize(
    "path", ["/", "/ui/runs", "/api/runs/r1", "/healthz/", "/healthzx", "/metrics/x"]
)
async def test_other_paths_go_to_the_fallback(
    client: httpx.AsyncClient, recorder: Recorder, path: str
) -> None:
    response = await client.post(f"{path}?a=1", content=b"body")
    assert response.status_code == 200
    assert response.text == f"fallback POST {path}?a=1"
    assert recorder.paths == [path]


async def test_without_a_fallback_other_paths_are_not_found() -> None:
    app = runtime().asgi_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://service"
    ) as c:
        missing = await c.get("/ui/runs")
        assert missing.status_code == 404
        assert (await c.get("/healthz")).status_code == 200


async def test_a_websocket_is_not_handed_to_the_fallback(recorder: Recorder) -> None:
    app = runtime().asgi_app(fallback=recorder)
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ui/runs", "headers": [], "query_string": b""}
    await app(scope, receive, send)
    assert recorder.paths == []
    assert [m["type"] for m in sent] == ["websocket.close"]
