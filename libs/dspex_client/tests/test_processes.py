"""The supervisor's handling of child processes: output to a log file, a child that dies
while starting is reported with the end of its log, and stopping kills what ignores SIGTERM."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from dspex_client.processes import StackError, read_ready_line, spawn, stop_all, wait_ready

pytestmark = pytest.mark.unit


def test_a_child_that_dies_while_starting_is_reported(tmp_path: Path) -> None:
    script = "import sys; print('no database here', file=sys.stderr); sys.exit(3)"
    child = spawn(
        "registry",
        "registry",
        [sys.executable, "-c", script],
        log_dir=tmp_path,
        env={},
        http_port=1,
    )
    with pytest.raises(StackError, match=r"registry exited with code 3[\s\S]*no database here"):
        wait_ready([child], timeout_s=30)
    stop_all([child], timeout_s=5)


def test_stop_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('READY now', flush=True); time.sleep(60)"
    )
    child = spawn("stubborn", "kernel", [sys.executable, "-c", script], log_dir=tmp_path, env={})
    assert read_ready_line(child, "READY", timeout_s=30) == "now"  # SIGTERM is ignored from here
    stop_all([child], timeout_s=0.5)
    assert child.process.returncode == -signal.SIGKILL
