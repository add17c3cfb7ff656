"""Following a run: an ordered JetStream consumer on the DSPEX_RUN stream, started at the
run's beginning (so a late watcher sees its history), filtered in-process by run id, ending
with the run's RunCompleted."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from dspex_contracts import RunCompleted, RunProgress, subjects

from .errors import NotConnected, RequestTimeout

__all__ = ["RunEventT", "follow_run"]

RunEventT = RunProgress | RunCompleted

RUN_STREAM = "DSPEX_RUN"
# Server and client clocks may differ a little even on one machine's containers; starting a
# bit early only costs a few skipped events.
_CLOCK_MARGIN = timedelta(seconds=5)
_POLL_S = 0.5


def _parse(data: bytes, run_id: str) -> RunEventT | None:
    try:
        raw = json.loads(data)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    payload = raw.get("payload")
    if not isinstance(payload, dict) or payload.get("run_id") != run_id:
        return None
    try:
        if raw.get("type") == RunCompleted.TYPE:
            return RunCompleted.model_validate(raw)
        if raw.get("type") == RunProgress.TYPE:
            return RunProgress.model_validate(raw)
    except ValidationError:
        return None  # a malformed event of someone else's making: not this watcher's problem
    return None


async def follow_run(
    js: JetStreamContext,
    run_id: str,
    *,
    since: datetime | None = None,
    timeout_s: float | None = None,
) -> AsyncIterator[RunEventT]:
    """Yield the run's RunProgress events in order, then its RunCompleted, then stop.
    ``since`` is when the run was requested (None reads the stream from its start);
    ``timeout_s`` bounds the whole watch (RequestTimeout)."""
    config = ConsumerConfig()
    if since is not None:
        config.deliver_policy = DeliverPolicy.BY_START_TIME
        config.opt_start_time = since - _CLOCK_MARGIN
    else:
        config.deliver_policy = DeliverPolicy.ALL
    try:
        sub = await js.subscribe(
            f"{subjects.PREFIX}.run.>",
            stream=RUN_STREAM,
            ordered_consumer=True,
            config=config,
        )
    except (nats.js.errors.NotFoundError, nats.errors.NoRespondersError) as e:
        raise NotConnected(
            f"stream {RUN_STREAM} does not exist: is the DSPEx stack running (`dspex up`)?"
        ) from e
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise RequestTimeout(f"run {run_id} did not complete within {timeout_s} s")
            try:
                msg = await sub.next_msg(timeout=_POLL_S)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            event = _parse(msg.data, run_id)
            if event is None:
                continue
            yield event
            if isinstance(event, RunCompleted):
                return
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
