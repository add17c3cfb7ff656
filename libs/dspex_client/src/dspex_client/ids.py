"""Run ids the client chooses: short, readable, sortable by time, and valid NATS tokens."""

from __future__ import annotations

import secrets
import time

__all__ = ["new_run_id"]


def new_run_id() -> str:
    """``run-<yyyymmddThhmmss>-<6 hex>``: letters, digits and '-' only (a contract RunId)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return f"run-{stamp}-{secrets.token_hex(3)}"
