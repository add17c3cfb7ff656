"""Fixtures of the client tests: the embedded stack started by the same supervisor as
``dspex up`` (once per session: starting it costs seconds), on free ports."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dspex_client.stack import Stack, StackOptions

# Test modules import the helpers beside this file (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole stack: NATS, the simulated LM, registry, kernel, two evaluators, optimizer."""
    options = StackOptions(
        data_dir=tmp_path_factory.mktemp("dspex-stack"),
        nats_port=0,
        evaluators=2,
        ready_timeout_s=90.0,
        stop_timeout_s=15.0,
        log_level="WARNING",
    )
    with Stack(options) as running:
        yield running
