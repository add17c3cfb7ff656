"""The dashboards and alerts against real data: the embedded stack (as ``dspex up`` starts
it) is scraped by a real Prometheus on loopback while it executes programs, runs an
optimization, dead-letters a malformed event and meets LM faults; then every PromQL
expression of every dashboard panel returns data, and every metric an alert rule reads
has series. Prometheus comes from Debian's ``prometheus`` package, installed by the test
setup when missing."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml

from dspex_client import DSPExClient
from dspex_client.stack import Stack, StackOptions
from dspex_contracts import ExecuteCompleted, RunCompleted, RunProgress, subjects
from dspex_kernel import ProgramSpec
from dspex_runtime.testing.tools import PROMTOOL, ensure_promtool, require_tool
from dspex_simlm.testing import set_config

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
EXAMPLE = ROOT / "examples" / "math_qa"
# Grafana's variables, as a query run by hand would fill them in.
VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "10m",
}
METRIC = re.compile(r"\b((?:dspex|faststream)_[a-zA-Z0-9_]+|up)\b")


def rows(name: str, n: int) -> list[dict[str, Any]]:
    lines = (EXAMPLE / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    return [json.loads(line) for line in lines]


def prometheus_binary() -> str:
    require_tool(ensure_promtool(), PROMTOOL)  # the same Debian package brings the server
    found = shutil.which("prometheus")
    if found is None:
        pytest.skip("the prometheus package is installed but its server is not on PATH")
    return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    options = StackOptions(
        data_dir=tmp_path_factory.mktemp("stack"),
        nats_port=0,
        evaluators=2,
        ready_timeout_s=90.0,
        log_level="WARNING",
        # Consumer lag refreshed often enough for a short test.
        env={"DSPEX_CONSUMER_LAG_INTERVAL_S": "1"},
    )
    with Stack(options) as running:
        yield running


@pytest.fixture(scope="module")
def prometheus(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = prometheus_binary()
    folder = tmp_path_factory.mktemp("prometheus")
    jobs: dict[str, list[str]] = {}
    for child in stack.services:
        jobs.setdefault(child.kind, []).append(urllib.parse.urlparse(child.url).netloc)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)] if ALERTS.exists() else [],
        "scrape_configs": [
            {"job_name": kind, "static_configs": [{"targets": targets}]}
            for kind, targets in jobs.items()
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = _free_port()
    log = (folder / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _get(f"{url}/-/ready") is not None, "Prometheus to be ready", 60)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


async def exercise(stack: Stack) -> None:
    """Traffic of every kind the dashboards show."""
    assert stack.lm_api_base is not None
    spec = ProgramSpec.load(EXAMPLE / "program.yaml")
    async with DSPExClient(stack.nats_url) as client:
        await client.register_program(spec.model_dump(mode="json"), source="test")
        for row in rows("test", 3):
            answer = await client.execute("math_qa", {"question": row["question"]})
            assert isinstance(answer, ExecuteCompleted), answer
        await client.execute("math_qa", {"wrong": 1})  # an execution that fails
        run_id = await client.start_optimization(
            "math_qa",
            rows("train", 12),
            rows("dev", 8),
            metric="numeric",
            strategy="random",
            params={"n_candidates": 2},
        )
        done = None
        async for event in client.watch_run(run_id):
            if isinstance(event, RunCompleted):
                done = event
        assert done is not None
        assert done.payload.status == "completed"
        # LM faults: every request fails for a moment, so LM errors are counted.
        set_config(stack.lm_api_base, fault_rate=1.0, fault_kinds=["500"])
        try:
            await client.execute("math_qa", {"question": rows("test", 4)[3]["question"]})
        finally:
            set_config(stack.lm_api_base, fault_rate=0.0)
    nc = await nats.connect(stack.nats_url)
    try:  # a malformed event, dead-lettered with its reason
        await nc.jetstream().publish(subjects.EXEC_REQUESTED, b"{not json")
    finally:
        await nc.close()
    # A run still going while the panels are read: the active-run gauges have samples.
    set_config(stack.lm_api_base, latency_ms=500)
    async with DSPExClient(stack.nats_url) as client:
        slow = await client.start_optimization(
            "math_qa",
            rows("train", 12),
            rows("dev", 40),
            metric="numeric",
            strategy="random",
            params={"n_candidates": 40},
            seed=1,
        )
        async for event in client.watch_run(slow):  # until it has a best score
            if isinstance(event, RunProgress) and event.payload.best_score is not None:
                break


def test_every_panel_and_alert_reads_real_series(stack: Stack, prometheus: str) -> None:
    if not DASHBOARDS.exists() or not list(DASHBOARDS.glob("*.json")):
        pytest.fail("no dashboards under deploy/grafana/dashboards")
    asyncio.run(exercise(stack))
    time.sleep(8)  # a few scrapes after the last event, for rate() and increase()
    missing: list[str] = []
    checked = 0
    for path in sorted(DASHBOARDS.glob("*.json")):
        for title, expr in panel_queries(json.loads(path.read_text(encoding="utf-8"))):
            checked += 1
            if not query(prometheus, fill(expr)):
                missing.append(f"{path.name} / {title}: {expr}")
    alert_metrics = set()
    for group in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]:
        for rule in group["rules"]:
            alert_metrics |= set(METRIC.findall(str(rule["expr"])))
    for name in sorted(alert_metrics):
        checked += 1
        if not query(prometheus, f'count({{__name__="{name}"}})'):
            missing.append(f"alerts.yml: no series of {name}")
    print(f"{checked} expressions and metrics checked against live data")
    assert not missing, "expressions without data:\n" + "\n".join(missing)


def panel_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    panels = list(dashboard.get("panels", []))
    while panels:
        panel = panels.pop(0)
        panels.extend(panel.get("panels", []))  # rows may nest panels
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield str(panel.get("title", panel.get("id"))), str(target["expr"])


def fill(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    # Template variables ($service, ${model}...) select everything.
    return re.sub(r"\$\{?[a-zA-Z_]+\}?", ".*", expr)


def query(prometheus: str, expr: str) -> list[Any]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = _get(url)
    assert body is not None, f"Prometheus did not answer {expr!r}"
    answer = json.loads(body)
    assert answer["status"] == "success", (expr, answer)
    result: list[Any] = answer["data"]["result"]
    return result


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            data: bytes = response.read()
            return data
    except OSError:
        return None


def _wait(check: Any, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
