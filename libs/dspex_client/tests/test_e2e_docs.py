"""What the documentation promises, run for real against the stack: the README's SDK
example as written, and the demo's main job (``make demo`` runs the same ``run_demo`` on a
stack of its own) with the optimized version beating the baseline on held-out data."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from client_helpers import REPO

from dspex_client.demo import example_dir, run_demo
from dspex_client.stack import Stack

pytestmark = pytest.mark.e2e

SECTION = "## The `dspex` command line and the SDK"


def test_readme_sdk_example_runs(stack: Stack, tmp_path: Path) -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    block = re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]
    script = tmp_path / "sdk_example.py"
    script.write_text(block, encoding="utf-8")
    env = {**os.environ, "DSPEX_NATS_URL": stack.nats_url}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=180, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "outputs=" in done.stdout
    assert "RunCompleted completed" in done.stdout


def test_the_demo_main_job_beats_the_baseline_on_held_out_data(stack: Stack) -> None:
    result = asyncio.run(run_demo(stack, example_dir()))
    assert result["optimized_version"] > result["baseline_version"]
    assert result["test_optimized_score"] > result["test_baseline_score"]
    assert result["val_best_score"] > result["val_baseline_score"]
