"""The Prometheus configuration and alert rules under deploy/prometheus/ pass promtool:
the scrape config (with its rule files) is valid, the rules are valid, and the unit tests
in alerts_test.yml show each alert firing when it should and not otherwise."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from dspex_runtime.testing.tools import ensure_promtool, require_tool

pytestmark = pytest.mark.unit

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
SERVICES = ("registry", "kernel", "evaluator", "optimizer")
ALERTS = {
    "DSPExServiceDown",
    "DSPExHighErrorRate",
    "DSPExDeadLettersGrowing",
    "DSPExConsumerLagGrowing",
    "DSPExRunStalled",
    "DSPExLMErrorRatioHigh",
}


def promtool(*args: str) -> None:
    tool = require_tool(ensure_promtool(), "promtool")
    done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_config_is_valid() -> None:
    promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))


def test_rules_are_valid() -> None:
    promtool("check", "rules", str(PROMETHEUS / "alerts.yml"))


def test_rules_unit_tests_pass() -> None:
    promtool("test", "rules", str(PROMETHEUS / "alerts_test.yml"))


def test_every_service_is_scraped_by_a_job_of_its_name() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {
        job["job_name"]: [(n, c["port"]) for c in job["dns_sd_configs"] for n in c["names"]]
        for job in config["scrape_configs"]
    }
    assert jobs == {name: [(name, 8080)] for name in SERVICES}  # every replica, by DNS
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == ["alerts.yml"]


def test_every_alert_has_severity_summary_description_and_a_unit_test() -> None:
    rules = [
        rule
        for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    ]
    assert {rule["alert"] for rule in rules} == ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    checks = [check for test in tests for check in test["alert_rule_test"]]
    fired = {check["alertname"] for check in checks if check["exp_alerts"]}
    quiet = {check["alertname"] for check in checks if not check["exp_alerts"]}
    assert fired == ALERTS, "every alert is shown to fire"
    assert quiet == ALERTS, "every alert is shown not to fire too early or at all"
