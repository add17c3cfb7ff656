"""The command line without a stack: argument parsing, help, validation before anything is
sent (exit code 2, no traceback), a clear error when no stack answers (exit code 1), the
JSON summary line and the embedded stack's configuration."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from client_helpers import dspex, explain, write_jsonl
from rich.console import Console

from dspex_client.events import build_event
from dspex_client.processes import free_port
from dspex_client.render import RunProgressView, json_line, run_summary
from dspex_client.stack import Stack, StackOptions
from dspex_contracts import (
    Budget,
    ProgramRef,
    RunCompleted,
    RunCompletedPayload,
    RunProgress,
    RunProgressPayload,
    RunStatus,
    UsageInfo,
)

pytestmark = pytest.mark.unit

SUMMARY_KEYS = [
    "run_id",
    "status",
    "baseline_score",
    "best_score",
    "lm_calls",
    "cost_usd",
    "wall_s",
]


def test_help_names_every_command() -> None:
    result = dspex(["--help"])
    assert result.exit_code == 0, explain(result)
    for command in ("up", "program", "exec", "optimize", "evaluate", "runs", "events"):
        assert command in result.stdout


def test_help_says_what_defaults_do() -> None:
    wide = {"COLUMNS": "200"}  # help is laid out to the terminal; keep phrases on one line
    optimize = dspex(["optimize", "--help"], env=wide)
    assert "split" in optimize.stdout
    evaluate = dspex(["evaluate", "--help"], env=wide)
    assert "simulated LM" in evaluate.stdout


def test_events_publish_rejects_a_bad_file_before_connecting(tmp_path: Path) -> None:
    bad = tmp_path / "pause.json"
    bad.write_text(json.dumps({"run_id": "has spaces", "extra": 1}))
    # A closed port: validation must fail before any connection is tried.
    result = dspex(
        ["events", "publish", "dspex.run.pause.v1", str(bad)], f"nats://127.0.0.1:{free_port()}"
    )
    assert result.exit_code == 2, explain(result)
    assert "run_id" in result.stderr
    assert "extra" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("subject", "content", "expected"),
    [
        ("dspex.nope.v1", "{}", "no event is published"),
        ("dspex.run.pause.v1", "not json", "not valid JSON"),
        ("dspex.run.pause.v1", "[1, 2]", "must be a JSON object"),
    ],
)
def test_events_publish_errors(tmp_path: Path, subject: str, content: str, expected: str) -> None:
    path = tmp_path / "event.json"
    path.write_text(content)
    result = dspex(["events", "publish", subject, str(path)])
    assert result.exit_code == 2, explain(result)
    assert expected in result.stderr


def test_events_accept_a_payload_or_a_whole_envelope() -> None:
    event = build_event("dspex.run.cancel.v1", {"run_id": "r-1", "reason": "done"})
    assert event.TYPE == "CancelRun"
    again = build_event("dspex.run.cancel.v1", event.model_dump(mode="json"))
    assert again == event


@pytest.mark.parametrize(
    "args",
    [
        ["exec", "qa", "--input", "novalue"],
        ["optimize", "qa", "--trainset", "MISSING.jsonl", "--metric", "numeric"],
        ["optimize", "qa", "--trainset", "TRAIN", "--metric", "numeric", "--max-cost", "-1"],
        ["optimize", "qa", "--trainset", "TRAIN", "--metric", "numeric", "--param", "x"],
        ["program", "register", "MISSING.yaml"],
        ["runs", "list", "--status", "sleeping"],
    ],
)
def test_bad_arguments_exit_2_without_a_traceback(tmp_path: Path, args: list[str]) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [{"question": "q", "answer": 1}] * 4)
    args = [str(train) if a == "TRAIN" else a for a in args]
    result = dspex(args, f"nats://127.0.0.1:{free_port()}")
    assert result.exit_code == 2, explain(result)
    assert "error:" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_stack_is_a_clear_error() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    result = dspex(["program", "list"], url)
    assert result.exit_code == 1, explain(result)
    assert "cannot reach NATS" in result.stderr
    assert url in result.stderr


def test_run_summary_keys_and_one_line() -> None:
    completed = RunCompleted.create(
        RunCompletedPayload(
            run_id="r-1",
            status=RunStatus.BUDGET_EXHAUSTED,
            stop_reason="max_lm_calls",
            program=ProgramRef(name="qa", version=1),
            baseline_score=0.4,
            best_score=0.6,
            usage=UsageInfo(calls=20, cost_usd=0.002),
            wall_s=1.23456,
        )
    )
    summary = run_summary("r-1", completed)
    assert list(summary) == SUMMARY_KEYS
    assert summary["status"] == "budget_exhausted"
    assert summary["lm_calls"] == 20
    line = json_line(summary)
    assert "\n" not in line
    assert json.loads(line) == summary
    queued = run_summary("r-2", None)
    assert list(queued) == SUMMARY_KEYS
    assert queued["status"] == "queued"


def test_progress_bar_fills_with_the_furthest_share() -> None:
    view = RunProgressView(Console(file=io.StringIO()), "r-1", Budget(max_lm_calls=100))
    progress = RunProgress.create(
        RunProgressPayload(
            run_id="r-1",
            status=RunStatus.RUNNING,
            strategy="random",
            lm_calls=50,
            elapsed_s=10.0,
            eta_s=30.0,
        )
    )
    assert view._fraction(progress) == pytest.approx(0.5)
    view.update(progress)
    assert view.progress.tasks[0].completed == pytest.approx(0.5)


def test_service_environments(tmp_path: Path) -> None:
    stack = Stack(StackOptions(data_dir=tmp_path, evaluators=2))
    stack.nats_url = "nats://127.0.0.1:1234"
    stack.lm_api_base = "http://127.0.0.1:9/v1"
    registry = stack.service_env("registry", 8001)
    assert registry["DSPEX_DATABASE_URL"].startswith("sqlite+aiosqlite:///")
    assert "DSPEX_LM_MODEL" not in registry
    evaluator = stack.service_env("evaluator", 8002)
    assert evaluator["DSPEX_NATS_URL"] == "nats://127.0.0.1:1234"
    assert evaluator["DSPEX_HTTP_PORT"] == "8002"
    assert evaluator["DSPEX_LM_API_BASE"] == "http://127.0.0.1:9/v1"
    assert json.loads(evaluator["DSPEX_LM_PRICES"])["openai/sim-base"] == [0.5, 1.5]
    real = Stack(StackOptions(data_dir=tmp_path, lm_model="openai/gpt-4o-mini"))
    env = real.service_env("kernel", 8003)
    assert env["DSPEX_LM_MODEL"] == "openai/gpt-4o-mini"
    assert "DSPEX_LM_PRICES" not in env
