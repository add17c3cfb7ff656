"""The Grafana dashboards and provisioning under deploy/grafana/: well-formed dashboard
JSON, valid PromQL in every panel (checked by promtool as recording rules), and no metric
name in a dashboard or an alert rule that the services do not export."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dspex_runtime.testing.fixtures import nats_server  # noqa: F401
from dspex_runtime.testing.nats import NatsServer
from dspex_runtime.testing.tools import ensure_promtool, require_tool

# litellm (imported by the services) would fetch its price map from the network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
GRAFANA = DEPLOY / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
ALERTS = DEPLOY / "prometheus" / "alerts.yml"

# Grafana's variables, replaced by what they stand for (a regex for the template ones).
VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$service": ".*",
    "$model": ".*",
}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
SYNTHETIC = {"up"}  # added by Prometheus itself to every target


def load(path: Path) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text())
    return board


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # the panels of a collapsed row


def graphs(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    return (p for p in panels(board) if p["type"] != "row")


def substitute(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):  # $__range before $__r...
        expr = expr.replace(name, VARIABLES[name])
    assert "$" not in expr, f"unknown variable in {expr}"
    return expr


def dashboard_exprs() -> list[str]:
    return [
        substitute(target["expr"])
        for path in DASHBOARDS
        for panel in graphs(load(path))
        for target in panel["targets"]
    ]


def alert_exprs() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers left once strings, label
    matchers, ranges and grouping clauses are removed, that are neither functions (followed
    by a parenthesis) nor keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    found = re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?!\w*\s*\()", text)
    return {m.group(1) for m in found if m.group(1).lower() not in KEYWORDS}


def exported_names(exposition: str) -> set[str]:
    """The sample names a /metrics text can serve, from its HELP/TYPE lines (so that a
    labelled metric counts before its first sample)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("_sum", "_count", "_created"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def service_registries() -> list[CollectorRegistry]:
    """What each service's /metrics serves, from its composition root (it connects to
    nothing before it starts)."""
    from dspex_evaluator import create_app as evaluator
    from dspex_kernel_service import create_app as kernel
    from dspex_optimizer import create_app as optimizer
    from dspex_registry import create_app as registry

    runtimes = [kernel()[0], evaluator()[0], registry()[0], optimizer()[0].service]
    return [runtime.registry for runtime in runtimes]


def assert_all_exported(exported: set[str]) -> None:
    wanted = {
        (source, name)
        for source, exprs in (("dashboards", dashboard_exprs()), ("alerts", alert_exprs()))
        for expr in exprs
        for name in metric_names(expr)
    }
    missing = sorted(f"{name} (in {source})" for source, name in wanted if name not in exported)
    assert not missing, f"not exported by any service: {missing}"


# Structure -----------------------------------------------------------------------------


@pytest.mark.unit
def test_the_three_dashboards_exist() -> None:
    assert [p.name for p in DASHBOARDS] == ["lm.json", "overview.json", "runs.json"]


@pytest.mark.unit
@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path: Path) -> None:
    board = load(path)
    assert board["uid"]
    assert board["title"]
    assert 36 <= board["schemaVersion"] <= 41
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels(board):
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= grid.keys(), panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
    for panel in graphs(board):
        assert panel["datasource"]["uid"] == "prometheus", panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target.get("datasource", {"uid": "prometheus"})["uid"] == "prometheus"
    for variable in board["templating"]["list"]:
        assert variable["datasource"]["uid"] == "prometheus", variable["name"]
        assert f"${variable['name']}" in VARIABLES
    uses = {v for v in VARIABLES if not v.startswith("$__") and v in path.read_text()}
    defined = {f"${v['name']}" for v in board["templating"]["list"]}
    assert uses <= defined, "every template variable used is defined"


@pytest.mark.unit
def test_dashboard_uids_are_unique() -> None:
    uids = [load(path)["uid"] for path in DASHBOARDS]
    assert len(uids) == len(set(uids))


@pytest.mark.unit
def test_provisioning_points_at_prometheus_and_the_dashboards() -> None:
    provisioning = GRAFANA / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    [source] = sources["datasources"]
    assert (source["uid"], source["type"]) == ("prometheus", "prometheus")
    assert source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((provisioning / "dashboards" / "dspex.yml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


# PromQL ----------------------------------------------------------------------------------


@pytest.mark.unit
def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = require_tool(ensure_promtool(), "promtool")
    exprs = dashboard_exprs()
    rules = [{"record": f"dashboard:check_{i}", "expr": expr} for i, expr in enumerate(exprs)]
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(exprs)} rules found" in done.stdout


@pytest.mark.unit
@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.95, sum by (service, le) (rate(x_bucket{a=~"$b"}[5m])))',
            {"x_bucket"},
        ),
        ("min_over_time(a[10m]) > 0 and changes(b[10m]) == 0", {"a", "b"}),
        ('up{job=~"kernel"} == 0 and on (job) max by (job) (c) > bool 1e3', {"up", "c"}),
    ],
)
def test_metric_names_are_read_from_expressions(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


# Metric names ----------------------------------------------------------------------------


@pytest.mark.unit
def test_every_metric_in_dashboards_and_alerts_is_registered_by_a_service() -> None:
    exported = set(SYNTHETIC)
    for registry in service_registries():
        exported |= exported_names(generate_latest(registry).decode())
    assert_all_exported(exported)


@pytest.mark.integration
async def test_every_metric_in_dashboards_and_alerts_is_served_by_a_running_service(
    nats_server: NatsServer,  # noqa: F811
) -> None:
    from dspex_evaluator import EvaluatorSettings
    from dspex_evaluator import create_app as evaluator
    from dspex_kernel_service import KernelSettings
    from dspex_kernel_service import create_app as kernel
    from dspex_optimizer import OptimizerSettings
    from dspex_optimizer import create_app as optimizer
    from dspex_registry import RegistrySettings
    from dspex_registry import create_app as registry
    from dspex_registry.adapters.memory import InMemoryRegistryStore

    common: dict[str, Any] = {
        "nats_url": nats_server.url,
        "http_port": 0,
        "log_level": "WARNING",
    }
    lm = {"lm_cache": "none", "lm_api_base": "http://127.0.0.1:9", "lm_api_key": "sk-test"}
    builds: list[Callable[[], tuple[Any, Any]]] = [
        lambda: registry(RegistrySettings(**common), store=InMemoryRegistryStore()),
        lambda: kernel(KernelSettings(**common, **lm)),
        lambda: evaluator(EvaluatorSettings(**common, **lm)),
        lambda: (lambda built: (built[0].service, built[1]))(
            optimizer(OptimizerSettings(**common, **lm))
        ),
    ]
    exported = set(SYNTHETIC)
    async with aiohttp.ClientSession() as http:
        for build in builds:  # one at a time: each creates its streams and consumers
            runtime, app = build()
            task = asyncio.create_task(runtime.serve(app))
            try:
                for _ in range(600):
                    if task.done() or (runtime.http_server and runtime.http_server.started):
                        break
                    await asyncio.sleep(0.05)
                if task.done():
                    task.result()
                url = f"http://127.0.0.1:{runtime.http_port}/metrics"
                async with http.get(url) as response:
                    assert response.status == 200
                    exported |= exported_names(await response.text())
            finally:
                if runtime.http_server is not None:
                    runtime.http_server.should_exit = True
                await asyncio.wait_for(task, 30)
    assert_all_exported(exported)
