"""Shared fixtures for the simulated LM tests: the example rows and one real server process
per session, restored to a clean configuration after every test that uses it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dspex_simlm.testing import SimLMProcess, reset_stats, set_config

# litellm (used by one test module) must not fetch its cost map from the network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples" / "math_qa"
CLEAN_CONFIG: dict[str, Any] = {
    "latency_ms": 0,
    "latency_jitter_ms": 0,
    "fault_rate": 0.0,
    "fault_kinds": ["429", "500", "timeout", "malformed"],
    "timeout_s": 30,
    "seed": 0,
}


def read_rows(split: str) -> list[dict[str, Any]]:
    lines = (EXAMPLES / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    return EXAMPLES


@pytest.fixture(scope="session")
def splits() -> dict[str, list[dict[str, Any]]]:
    return {name: read_rows(name) for name in ("train", "dev", "test")}


@pytest.fixture(scope="session")
def dev_rows() -> list[dict[str, Any]]:
    return read_rows("dev")


@pytest.fixture(scope="session")
def train_rows() -> list[dict[str, Any]]:
    return read_rows("train")


@pytest.fixture(scope="session")
def sim_process() -> Iterator[SimLMProcess]:
    with SimLMProcess() as sim:
        yield sim


@pytest.fixture
def sim(sim_process: SimLMProcess) -> Iterator[SimLMProcess]:
    """The shared server with default configuration and zeroed counters."""
    set_config(sim_process.api_base, **CLEAN_CONFIG)
    reset_stats(sim_process.api_base)
    yield sim_process
    set_config(sim_process.api_base, **CLEAN_CONFIG)
