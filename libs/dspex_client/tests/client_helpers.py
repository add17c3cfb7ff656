"""Helpers of the client tests: run the ``dspex`` CLI in-process against a stack, read the
JSON line a command ends with, make small datasets, and wait for a run to reach a state."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from dspex_client.cli import app

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "math_qa"
WAIT_S = 60.0


def dspex(
    args: Sequence[str], nats_url: str | None = None, env: Mapping[str, str | None] | None = None
) -> Result:
    """``dspex ARGS`` in this process; stdout and stderr are kept apart."""
    environment: dict[str, str | None] = {"DSPEX_NATS_URL": nats_url} if nats_url else {}
    environment.update(env or {})
    return CliRunner().invoke(app, list(args), env=environment)


def last_json(result: Result) -> dict[str, Any]:
    """The JSON object on the last non-empty line of stdout."""
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, f"no output; stderr: {result.stderr}"
    data = json.loads(lines[-1])
    assert isinstance(data, dict)
    return data


def explain(result: Result) -> str:
    return f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def examples(name: str, start: int, count: int) -> list[dict[str, Any]]:
    """``count`` rows of ``examples/math_qa/<name>.jsonl`` from row ``start``: tests use
    distinct slices so that the shared LM cache does not answer one test from another's."""
    lines = (EXAMPLE / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[start : start + count]]


def eventually(check: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def finished_run_record(run_id: str, nats_url: str) -> dict[str, Any] | None:
    """The registry's record of a run once it has recorded how the run ended: the CLI may
    see RunCompleted before the registry has consumed it."""
    record = run_record(run_id, nats_url)
    return record if record is not None and record.get("finished_at") else None


def run_record(run_id: str, nats_url: str) -> dict[str, Any] | None:
    """The registry's record of a run (``dspex runs show --json``), None until it has one."""
    result = dspex(["runs", "show", run_id, "--json"], nats_url)
    if result.exit_code != 0:
        return None
    data: dict[str, Any] = json.loads(result.stdout)
    return data
