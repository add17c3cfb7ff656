"""Graceful shutdown of a real service process: after SIGTERM it stops fetching, lets the
in-flight handler finish and acknowledge, and exits. Also checks its JSON logs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import nats
import pytest
from nats.aio.msg import Msg
from runtime_helpers import eventually, request

from dspex_contracts import ExecuteCompleted, subjects
from dspex_runtime.testing.nats import NatsServer

pytestmark = pytest.mark.integration

SERVICE = Path(__file__).with_name("slow_service.py")
Service = tuple[subprocess.Popen[bytes], int, Path]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def service(nats_server: NatsServer, tmp_path: Path) -> Iterator[Service]:
    port = _free_port()
    log = tmp_path / "service.log"
    env = {
        **os.environ,
        "DSPEX_SERVICE_NAME": "slow",
        "DSPEX_NATS_URL": nats_server.url,
        "DSPEX_HTTP_PORT": str(port),
        "DSPEX_CONCURRENCY": "2",
        "DSPEX_GRACEFUL_TIMEOUT_S": "30",
    }
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(SERVICE)], env=env, stdout=stderr, stderr=subprocess.STDOUT
        )
    try:
        yield process, port, log
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


async def test_sigterm_lets_the_in_flight_handler_finish(
    service: Service, nats_server: NatsServer
) -> None:
    process, port, log = service

    async def ready() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{port}/readyz") as resp,
            ):
                return resp.status == 204
        except aiohttp.ClientError:
            return False

    await eventually(ready, "the service to be ready")
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    completed: list[ExecuteCompleted] = []

    async def on_completed(msg: Msg) -> None:
        completed.append(ExecuteCompleted.model_validate_json(msg.data))

    await nc.subscribe(subjects.EXEC_COMPLETED, cb=on_completed)
    event = request("slow", sleep=2)
    await js.publish(subjects.EXEC_REQUESTED, event.model_dump_json().encode())

    async def in_flight() -> bool:
        info = await js.consumer_info("DSPEX_EXEC", "slow")
        return bool(info.num_ack_pending == 1)

    await eventually(in_flight, "the handler to start")
    process.send_signal(signal.SIGTERM)
    await asyncio.to_thread(process.wait, 30)

    info = await js.consumer_info("DSPEX_EXEC", "slow")

    async def answered() -> bool:
        return bool(completed)

    await eventually(answered, "the ExecuteCompleted of the in-flight request")
    await nc.close()
    assert [c.payload.request_id for c in completed] == [event.id]
    assert info.num_ack_pending == 0
    assert info.num_redelivered == 0
    # uvicorn re-raises the SIGTERM it handled once the app has shut down.
    assert process.returncode in (0, -signal.SIGTERM)

    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert lines, log.read_text()
    assert {line["service"] for line in lines} == {"slow"}
    started = [line for line in lines if line["message"] == "handling started"]
    assert started[0]["correlation_id"] == "corr-1"
    assert started[0]["logger"] == "slow_service"
    messages = [line["message"] for line in lines]
    assert messages.index("handling finished") < messages.index("Application shutdown complete.")
