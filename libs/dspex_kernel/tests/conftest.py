"""Shared fixtures: paths of the bundled example and the real simulated LM (a subprocess
serving HTTP) for integration tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def example_dir() -> Path:
    return REPO / "examples" / "math_qa"


@pytest.fixture(scope="session")
def sim_lm() -> Iterator[str]:
    """The simulated LM as a real HTTP server; yields its api_base."""
    from dspex_simlm.testing import SimLMProcess

    with SimLMProcess() as sim:
        yield sim.api_base
