"""``dspex up`` as a user runs it: a foreground process that starts the stack, writes
stack.json so that other commands find it without any setting, refuses a second stack on
the same data folder, and on SIGTERM stops every process it started."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from client_helpers import dspex, eventually, explain

from dspex_client.stackfile import read_stack_file

pytestmark = pytest.mark.e2e


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def check_explorer(out: Path) -> None:
    """The run explorer is up where ``dspex up`` says, and its actions take the token."""
    printed = eventually(
        lambda: re.search(r"run explorer: (http://\S+/ui)", out.read_text()),
        "dspex up to print the run explorer's address",
        timeout_s=30,
    )
    page = httpx.get(printed.group(1), follow_redirects=True, timeout=10)
    assert page.status_code == 200
    assert "Optimization runs" in page.text
    base = printed.group(1).removesuffix("/ui")
    refused = httpx.post(f"{base}/api/runs/no-such-run/pause", timeout=10)
    assert refused.status_code == 401
    allowed = httpx.post(
        f"{base}/api/runs/no-such-run/pause",
        headers={"Authorization": "Bearer up-token"},
        timeout=10,
    )
    assert allowed.status_code == 404  # past the token check: the run is unknown


def test_up_serves_until_sigterm_then_stops_everything(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DSPEX_NATS_URL"}
    env["DSPEX_DATA_DIR"] = str(tmp_path)
    argv = [
        sys.executable,
        "-m",
        "dspex_client",
        "up",
        "--nats-port",
        "0",
        "--log-level",
        "WARNING",
        "--ui-token",
        "up-token",
    ]
    with open(tmp_path / "up.out", "wb") as out:
        up = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:

        def started() -> dict[str, object] | None:
            assert up.poll() is None, (tmp_path / "up.out").read_text()
            return read_stack_file(tmp_path)

        info = eventually(started, "dspex up to write stack.json", timeout_s=150)
        kinds = sorted(p["kind"] for p in info["processes"])
        assert kinds == ["evaluator", "kernel", "nats", "optimizer", "registry", "simlm"]
        # No URL given anywhere: the command finds the stack through stack.json.
        discovery = {"DSPEX_NATS_URL": None, "DSPEX_DATA_DIR": str(tmp_path)}
        listed = dspex(["program", "list", "--json"], env=discovery)
        assert listed.exit_code == 0, explain(listed)
        assert json.loads(listed.stdout) == []
        second = dspex(["up", "--nats-port", "0"], env=discovery)
        assert second.exit_code == 1
        assert "already runs" in second.stderr
        check_explorer(tmp_path / "up.out")
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(timeout=60)
    output = (tmp_path / "up.out").read_text()
    assert code == 0, output
    assert "stopped." in output
    assert not (tmp_path / "stack.json").exists()
    assert all(_gone(int(p["pid"])) for p in info["processes"])
