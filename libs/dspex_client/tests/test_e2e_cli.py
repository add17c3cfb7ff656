"""The ``dspex`` CLI against the whole stack, started as ``dspex up`` starts it: programs,
executions, optimization runs to completion, run control, budgets and raw events. Each run
uses its own slice of the example data so that the shared LM cache cannot answer it from
another test's calls."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from client_helpers import (
    EXAMPLE,
    dspex,
    eventually,
    examples,
    explain,
    finished_run_record,
    last_json,
    run_record,
    write_jsonl,
)

from dspex_client.stack import Stack
from dspex_simlm.testing import set_config

pytestmark = pytest.mark.e2e

TERMINAL = {"completed", "cancelled", "failed", "budget_exhausted"}

SUMMARY_KEYS = {
    "run_id",
    "status",
    "baseline_score",
    "best_score",
    "lm_calls",
    "cost_usd",
    "wall_s",
}


@pytest.fixture(scope="module")
def registered(stack: Stack) -> str:
    result = dspex(["program", "register", str(EXAMPLE / "program.yaml")], stack.nats_url)
    assert result.exit_code == 0, explain(result)
    return str(last_json(result)["name"])


def data(tmp_path: Path, name: str, start: int, count: int) -> str:
    return str(write_jsonl(tmp_path / f"{name}-{start}.jsonl", examples(name, start, count)))


def test_program_register_list_show(stack: Stack, registered: str, tmp_path: Path) -> None:
    minimal = tmp_path / "echo.json"
    minimal.write_text(
        json.dumps(
            {
                "name": "echo_qa",
                "stages": [{"name": "a", "module": "predict", "signature": "question -> answer"}],
            }
        )
    )
    first = dspex(["program", "register", str(minimal)], stack.nats_url)
    second = dspex(["program", "register", str(minimal)], stack.nats_url)
    assert first.exit_code == second.exit_code == 0, explain(second)
    assert last_json(second)["version"] == last_json(first)["version"] + 1
    listed = dspex(["program", "list", "--json"], stack.nats_url)
    assert listed.exit_code == 0, explain(listed)
    names = {p["name"]: p for p in json.loads(listed.stdout)}
    assert registered in names
    assert names["echo_qa"]["latest_version"] == last_json(second)["version"]
    table = dspex(["program", "list"], stack.nats_url)
    assert "echo_qa" in table.stdout
    shown = dspex(["program", "show", "echo_qa", "--version", "1", "--json"], stack.nats_url)
    assert shown.exit_code == 0, explain(shown)
    assert json.loads(shown.stdout)["spec"]["stages"][0]["signature"] == "question -> answer"
    yaml_view = dspex(["program", "show", registered], stack.nats_url)
    assert "stages:" in yaml_view.stdout
    missing = dspex(["program", "show", "no_such_program"], stack.nats_url)
    assert missing.exit_code == 1
    assert "no_such_program" in missing.stderr


def test_exec_prints_the_outputs(stack: Stack, registered: str) -> None:
    question = examples("test", 0, 1)[0]["question"]
    result = dspex(["exec", registered, "--input", f"question={question}"], stack.nats_url)
    assert result.exit_code == 0, explain(result)
    outputs = json.loads(result.stdout)
    assert isinstance(outputs["answer"], int)
    missing = dspex(["exec", registered, "--input", "nope=1"], stack.nats_url)
    assert missing.exit_code == 1
    assert "question" in missing.stderr


def test_optimize_watch_to_completion_then_runs_list_and_show(
    stack: Stack, registered: str, tmp_path: Path
) -> None:
    command = "--metric numeric --strategy bootstrap --seed 0 --param num_candidate_sets=2"
    train, val = data(tmp_path, "train", 0, 30), data(tmp_path, "dev", 0, 30)
    args = ["optimize", registered, *command.split(), "--watch", "--timeout", "120"]
    result = dspex([*args, "--trainset", train, "--valset", val], stack.nats_url)
    assert result.exit_code == 0, explain(result)
    summary = last_json(result)
    assert set(summary) == SUMMARY_KEYS
    assert summary["status"] == "completed"
    assert 0.0 <= summary["baseline_score"] <= summary["best_score"] <= 1.0
    assert summary["lm_calls"] > 0
    assert summary["cost_usd"] > 0
    run_id = summary["run_id"]
    listed = dspex(["runs", "list", "--json"], stack.nats_url)
    assert run_id in {r["run_id"] for r in json.loads(listed.stdout)}
    shown = dspex(["runs", "show", run_id], stack.nats_url)
    assert shown.exit_code == 0, explain(shown)
    assert last_json(shown)["best_score"] == summary["best_score"]
    # A late watcher sees the whole run, up to the same summary.
    again = dspex(["runs", "watch", run_id, "--timeout", "30"], stack.nats_url)
    assert again.exit_code == 0, explain(again)
    assert last_json(again) == summary
    unknown = dspex(["runs", "watch", "no-such-run"], stack.nats_url)
    assert unknown.exit_code == 1
    assert "no-such-run" in unknown.stderr


def test_a_spec_file_is_registered_then_optimized_with_a_split_trainset(
    stack: Stack, tmp_path: Path
) -> None:
    spec = tmp_path / "split_qa.yaml"
    spec.write_text(
        (EXAMPLE / "program.yaml").read_text().replace("name: math_qa", "name: split_qa")
    )
    command = "--metric numeric --strategy random --seed 1 --param n_candidates=3 --apply"
    args = ["optimize", str(spec), *command.split(), "--watch", "--timeout", "120"]
    result = dspex([*args, "--trainset", data(tmp_path, "train", 30, 40)], stack.nats_url)
    assert result.exit_code == 0, explain(result)
    assert "20 train and 20 validation" in result.stderr
    assert "registered split_qa version 1" in result.stderr
    assert last_json(result)["status"] == "completed"


@pytest.mark.parametrize(
    ("flag", "value", "reason"),
    [("--max-lm-calls", "10", "max_lm_calls"), ("--max-cost", "0.0005", "max_cost_usd")],
)
def test_each_budget_stops_the_run_with_its_reason(
    stack: Stack, registered: str, tmp_path: Path, flag: str, value: str, reason: str
) -> None:
    start = 70 if reason == "max_lm_calls" else 110
    train, val = data(tmp_path, "train", start, 20), data(tmp_path, "dev", start - 40, 20)
    args = ["optimize", registered, "--metric", "numeric", flag, value, "--watch"]
    result = dspex([*args, "--trainset", train, "--valset", val], stack.nats_url)
    assert result.exit_code == 0, explain(result)
    summary = last_json(result)
    assert summary["status"] == "budget_exhausted"
    assert reason in result.stderr
    record = eventually(
        lambda: finished_run_record(summary["run_id"], stack.nats_url), "the finished run record"
    )
    assert record["stop_reason"] == reason


def test_a_budgeted_mipro_run_says_how_many_valset_examples_its_scores_are_on(
    stack: Stack, registered: str, tmp_path: Path
) -> None:
    # Too few calls for mipro's planned search on all 30 validation examples: it scores
    # the baseline and its trials on a sample, and the CLI says so.
    train, val = data(tmp_path, "train", 200, 30), data(tmp_path, "dev", 40, 30)
    params = "--param num_candidates=3 --param minibatch_size=10"
    command = f"--metric numeric --strategy mipro --seed 2 {params} --max-lm-calls 120"
    args = ["optimize", registered, *command.split(), "--watch", "--timeout", "120"]
    result = dspex([*args, "--trainset", train, "--valset", val], stack.nats_url)
    assert result.exit_code == 0, explain(result)
    summary = last_json(result)
    assert summary["status"] == "completed"
    assert 0 < summary["lm_calls"] <= 120
    found = re.search(r"\(on (\d+) valset examples\)", result.stderr)
    assert found is not None, result.stderr
    assert 10 <= int(found.group(1)) < 30


def test_pause_resume_cancel_through_the_cli(stack: Stack, registered: str, tmp_path: Path) -> None:
    assert stack.lm_api_base is not None
    # Slow LM calls keep the run busy long enough to be steered.
    set_config(stack.lm_api_base, latency_ms=800)
    try:
        train, val = data(tmp_path, "train", 150, 60), data(tmp_path, "dev", 70, 30)
        started = dspex(
            ["optimize", registered, "--metric", "numeric", "--trainset", train, "--valset", val],
            stack.nats_url,
        )
        assert started.exit_code == 0, explain(started)
        queued = last_json(started)
        assert queued["status"] == "queued"
        run_id = queued["run_id"]

        def status_is(wanted: str) -> bool:
            record = run_record(run_id, stack.nats_url)
            status = record["status"] if record else None
            # A run that ended already cannot be steered any more: fail now, not at timeout.
            assert status not in TERMINAL, f"run ended early: {record}"
            return status == wanted

        eventually(lambda: status_is("running"), "the run to start")
        paused = dspex(["runs", "pause", run_id, "--reason", "test"], stack.nats_url)
        assert paused.exit_code == 0, explain(paused)
        eventually(lambda: status_is("paused"), "the run to pause")
        resumed = dspex(["runs", "resume", run_id], stack.nats_url)
        assert resumed.exit_code == 0, explain(resumed)
        eventually(lambda: status_is("running"), "the run to resume")
        cancelled = dspex(["runs", "cancel", run_id], stack.nats_url)
        assert cancelled.exit_code == 0, explain(cancelled)
        watched = dspex(["runs", "watch", run_id, "--timeout", "60"], stack.nats_url)
        assert watched.exit_code == 0, explain(watched)
        assert last_json(watched)["status"] == "cancelled"
    finally:
        set_config(stack.lm_api_base, latency_ms=0)


def test_events_publish_validates_then_publishes(stack: Stack, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"program": {"ref": {"name": "math_qa"}}}))
    rejected = dspex(["events", "publish", "dspex.exec.requested.v1", str(bad)], stack.nats_url)
    assert rejected.exit_code == 2, explain(rejected)
    assert "inputs" in rejected.stderr
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"run_id": "no-such-run", "reason": "test"}))
    published = dspex(["events", "publish", "dspex.run.cancel.v1", str(good)], stack.nats_url)
    assert published.exit_code == 0, explain(published)
    assert last_json(published)["type"] == "CancelRun"
