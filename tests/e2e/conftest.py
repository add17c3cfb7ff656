"""Fixtures of the crash tests: one embedded stack per module, started by the same
supervisor as ``dspex up``, with short acknowledgement waits so that redeliveries after a
SIGKILL come within seconds, and no LM cache so that a repeated run does the work again."""

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


@pytest.fixture(scope="module")
def crash_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """NATS, the simulated LM, registry, kernel, two evaluators and one optimizer."""
    options = StackOptions(
        data_dir=tmp_path_factory.mktemp("dspex-crash"),
        nats_port=0,
        evaluators=2,
        ready_timeout_s=90.0,
        stop_timeout_s=15.0,
        log_level="WARNING",
        # A cached answer would skip the simulated latency and make a repeated run instant.
        env={"DSPEX_LM_CACHE": "none"},
        kind_env={
            "optimizer": {"DSPEX_ACK_WAIT_S": "3"},
            "evaluator": {"DSPEX_ACK_WAIT_S": "5"},
        },
    )
    with Stack(options) as running:
        yield running
