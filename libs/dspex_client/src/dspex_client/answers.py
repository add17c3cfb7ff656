"""Collecting the answer to a published execution: the ExecuteCompleted or ExecuteFailed
whose ``request_id`` names it, read from the DSPEX_EXEC stream with an ordered consumer."""

from __future__ import annotations

import contextlib
import json
import time
from datetime import UTC, datetime, timedelta

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from dspex_contracts import ExecuteCompleted, ExecuteFailed, subjects

from .errors import RequestTimeout

__all__ = ["wait_for_answer"]

EXEC_STREAM = "DSPEX_EXEC"
# Without the request's sequence, answers are looked for this far back.
LOOKBACK = timedelta(hours=1)
_ANSWER_TYPES = {ExecuteCompleted.TYPE, ExecuteFailed.TYPE}


def _answers(data: bytes, request_id: str) -> bool:
    try:
        raw = json.loads(data)
    except ValueError:
        return False
    return (
        isinstance(raw, dict)
        and raw.get("type") in _ANSWER_TYPES
        and isinstance(raw.get("payload"), dict)
        and raw["payload"].get("request_id") == request_id
    )


async def wait_for_answer(
    js: JetStreamContext, request_id: str, *, after_seq: int | None, timeout_s: float
) -> bytes:
    """The body of the answer to ``request_id``; starts after the request's stream sequence
    when known, else an hour back."""
    config = ConsumerConfig()
    if after_seq is not None:
        config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = after_seq + 1
    else:
        config.deliver_policy = DeliverPolicy.BY_START_TIME
        config.opt_start_time = datetime.now(UTC) - LOOKBACK
    sub = await js.subscribe(
        f"{subjects.PREFIX}.exec.>", stream=EXEC_STREAM, ordered_consumer=True, config=config
    )
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            try:
                msg = await sub.next_msg(timeout=min(0.5, max(0.01, deadline - time.monotonic())))
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            if _answers(msg.data, request_id):
                return bytes(msg.data)
        raise RequestTimeout(f"no answer to execution {request_id} within {timeout_s} s")
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
