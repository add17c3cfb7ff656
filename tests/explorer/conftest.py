"""Fixtures of the run explorer's browser tests: Debian's Chromium (installed when missing),
one embedded stack with an operator token, and a folder for screenshots."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dspex_client.stack import Stack, StackOptions

sys.path.insert(0, str(Path(__file__).parent))

from explorer_helpers import TOKEN, ensure_chromium

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def chromium() -> str:
    path, why = ensure_chromium()
    if path is None:
        print(f"\nbrowser tests skipped: {why}")
        pytest.skip(why)
    return path


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots are kept: DSPEX_TEST_ARTIFACTS, else test-artifacts/ in the
    checkout (ignored by git)."""
    base = Path(os.environ.get("DSPEX_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    folder = base / "explorer"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def explorer_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """NATS, the simulated LM (slowed so that a run lasts long enough to be paused),
    registry with the explorer and a token, a kernel, two evaluators and an optimizer."""
    options = StackOptions(
        data_dir=tmp_path_factory.mktemp("dspex-explorer"),
        nats_port=0,
        evaluators=2,
        sim_latency_ms=40.0,
        ready_timeout_s=90.0,
        stop_timeout_s=15.0,
        log_level="WARNING",
        env={"DSPEX_LM_CACHE": "none"},
        kind_env={"registry": {"DSPEX_UI_TOKEN": TOKEN}},
    )
    with Stack(options) as running:
        yield running
