"""1,000 ExecuteRequested events from a separate client process, two kernel replicas as
separate processes sharing one durable consumer: exactly 1,000 answers, work split."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import nats
import pytest
from kernel_helpers import EXAMPLE

from dspex_contracts import subjects
from dspex_runtime.testing.nats import NatsServer
from dspex_simlm.testing import SimLMProcess

pytestmark = pytest.mark.e2e

COUNT = 1000
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def handled_ok(http: aiohttp.ClientSession, port: int) -> float:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    found = re.findall(
        r'^dspex_messages_handled_total\{[^}]*outcome="ok"[^}]*\} ([0-9.e+]+)$', text, re.M
    )
    return sum(float(v) for v in found)


def start_replicas(
    nats_url: str, api_base: str, programs: Path, ports: list[int], logs: Path
) -> list[subprocess.Popen[bytes]]:
    replicas = []
    for i, port in enumerate(ports):
        env = {
            **os.environ,
            "DSPEX_NATS_URL": nats_url,
            "DSPEX_LM_API_BASE": api_base,
            "DSPEX_LM_API_KEY": "sk-test",
            "DSPEX_PROGRAMS_DIR": str(programs),
            "DSPEX_HTTP_PORT": str(port),
            "DSPEX_CONCURRENCY": "16",
            "DSPEX_LOG_LEVEL": "WARNING",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        with open(logs / f"replica{i}.log", "wb") as log:  # the child keeps its own handle
            replicas.append(
                subprocess.Popen(
                    [sys.executable, "-m", "dspex_kernel_service"], env=env, stdout=log, stderr=log
                )
            )
    return replicas


async def test_thousand_requests_two_replicas_exactly_once(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    programs = tmp_path / "programs"
    programs.mkdir()
    shutil.copy(EXAMPLE / "program.yaml", programs / "math_qa.yaml")
    ports = [free_port(), free_port()]
    with SimLMProcess(latency_ms=5) as sim:
        replicas = await asyncio.to_thread(
            start_replicas, nats_server.url, sim.api_base, programs, ports, tmp_path
        )
        try:
            async with aiohttp.ClientSession() as http:
                for port in ports:
                    await wait_ready(http, port, replicas, tmp_path)
                publisher = await asyncio.create_subprocess_exec(
                    sys.executable,
                    str(HERE / "publish_requests.py"),
                    nats_server.url,
                    str(COUNT),
                    stdout=asyncio.subprocess.PIPE,
                )
                out, _ = await asyncio.wait_for(publisher.communicate(), 120)
                assert publisher.returncode == 0
                assert out.decode().strip() == f"published {COUNT}"
                nc = await nats.connect(nats_server.url)
                js = nc.jetstream()
                counts: dict[str, int] = {}

                async def all_answered() -> bool:
                    info = await js.stream_info("DSPEX_EXEC", subjects_filter="dspex.exec.>")
                    counts.update(info.state.subjects or {})
                    return (
                        counts.get(subjects.EXEC_COMPLETED, 0) + counts.get(subjects.EXEC_FAILED, 0)
                        >= COUNT
                    )

                deadline = asyncio.get_running_loop().time() + 240
                while not await all_answered():
                    assert asyncio.get_running_loop().time() < deadline, counts
                    await asyncio.sleep(0.5)
                await asyncio.sleep(1.0)  # anything extra would show up by now
                await all_answered()
                consumer = await js.consumer_info("DSPEX_EXEC", "kernel")
                await nc.close()
                per_replica = [await handled_ok(http, port) for port in ports]
        finally:
            await asyncio.to_thread(stop_replicas, replicas)
    print(
        f"answers: {counts}; handled per replica: {per_replica}; "
        f"redelivered: {consumer.num_redelivered}"
    )
    assert counts.get(subjects.EXEC_COMPLETED) == COUNT
    assert counts.get(subjects.EXEC_FAILED, 0) == 0
    assert counts.get(subjects.EXEC_REQUESTED) == COUNT
    assert sum(per_replica) >= COUNT
    assert all(n > 0 for n in per_replica), "both replicas must share the work"


def stop_replicas(replicas: list[subprocess.Popen[bytes]]) -> None:
    for replica in replicas:
        replica.terminate()
    for replica in replicas:
        replica.wait(30)


async def wait_ready(
    http: aiohttp.ClientSession, port: int, replicas: list[subprocess.Popen[bytes]], logs: Path
) -> None:
    async def ready() -> bool:
        assert all(r.poll() is None for r in replicas), (logs / "replica0.log").read_text()
        try:
            async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                return response.status == 204
        except aiohttp.ClientError:
            return False

    deadline = asyncio.get_running_loop().time() + 60
    while not await ready():
        assert asyncio.get_running_loop().time() < deadline, f"replica on {port} not ready"
        await asyncio.sleep(0.1)
