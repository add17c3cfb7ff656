"""How commands find the stack: explicit URL, then $DSPEX_NATS_URL, then a live stack.json,
then the default; a stack.json whose supervisor died is ignored."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dspex_client.stackfile import (
    DEFAULT_NATS_URL,
    default_data_dir,
    read_stack_file,
    remove_stack_file,
    resolve_nats_url,
    write_stack_file,
)

pytestmark = pytest.mark.unit


def test_precedence(tmp_path: Path) -> None:
    write_stack_file(tmp_path, {"pid": os.getpid(), "nats_url": "nats://127.0.0.1:5000"})
    env = {"DSPEX_DATA_DIR": str(tmp_path)}
    assert resolve_nats_url(environ=env) == "nats://127.0.0.1:5000"
    env["DSPEX_NATS_URL"] = "nats://127.0.0.1:6000"
    assert resolve_nats_url(environ=env) == "nats://127.0.0.1:6000"
    assert resolve_nats_url("nats://127.0.0.1:7000", environ=env) == "nats://127.0.0.1:7000"
    assert resolve_nats_url(environ={"DSPEX_DATA_DIR": str(tmp_path / "none")}) == (
        DEFAULT_NATS_URL
    )


def test_a_dead_supervisors_file_is_ignored(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    write_stack_file(tmp_path, {"pid": int(done.stdout), "nats_url": "nats://127.0.0.1:5000"})
    assert read_stack_file(tmp_path) is None
    assert resolve_nats_url(environ={"DSPEX_DATA_DIR": str(tmp_path)}) == DEFAULT_NATS_URL


def test_only_the_writer_removes_the_file(tmp_path: Path) -> None:
    write_stack_file(tmp_path, {"pid": os.getpid(), "nats_url": "nats://x:1"})
    remove_stack_file(tmp_path, os.getpid() + 1)
    assert read_stack_file(tmp_path) is not None
    remove_stack_file(tmp_path, os.getpid())
    assert read_stack_file(tmp_path) is None


def test_default_data_dir() -> None:
    assert default_data_dir({"DSPEX_DATA_DIR": "/srv/dspex"}) == Path("/srv/dspex")
    assert default_data_dir({}) == Path.home() / ".dspex"
