"""The client's NATS edge: connect with clear errors, publish a contract event on its
stream (``Nats-Msg-Id`` = event id), and read validation and dead-letter errors as text."""

from __future__ import annotations

import json
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from pydantic import ValidationError

from dspex_contracts import DeadLettered, Envelope
from dspex_contracts.subjects import stream_for

from .errors import NotConnected, RemoteError, RequestTimeout

__all__ = ["connect", "dead_letter", "publish_event", "validation_message"]


async def _quiet(*_: Any) -> None:
    # nats-py logs every reconnect attempt and error itself; the SDK raises instead.
    return None


async def connect(
    url: str,
    *,
    user: str | None = None,
    password: str | None = None,
    connect_timeout_s: float = 5.0,
    max_reconnect_attempts: int = 60,
) -> Client:
    """A NATS connection to ``url`` (comma-separated servers); NotConnected when no server
    answers at first, naming the URL and how to start the embedded stack. Once connected it
    reconnects (a second apart) through a broker restart of about a minute."""
    servers = [u.strip() for u in url.split(",") if u.strip()]
    try:
        nc = await nats.connect(
            servers=servers,
            user=user,
            password=password,
            connect_timeout=int(max(1, connect_timeout_s)),
            # At first, a server that does not answer twice is given up at once: a command
            # run without a stack must say so now, not after a minute of retries.
            max_reconnect_attempts=1,
            reconnect_time_wait=0.2,
            error_cb=_quiet,
            disconnected_cb=_quiet,
            reconnected_cb=_quiet,
            closed_cb=_quiet,
        )
    except (OSError, nats.errors.Error, TimeoutError) as e:
        raise NotConnected(
            f"cannot reach NATS at {url} ({type(e).__name__}: {e}); start the stack with "
            "`dspex up` or set DSPEX_NATS_URL"
        ) from e
    # Once connected, ride out a broker restart; nats-py reads these at each disconnect.
    nc.options["max_reconnect_attempts"] = max_reconnect_attempts
    nc.options["reconnect_time_wait"] = 1.0
    return nc


async def publish_event(
    js: JetStreamContext, event: Envelope[Any], *, timeout_s: float = 5.0
) -> int:
    """Store ``event`` on its stream; returns the stream sequence. A second publish of the
    same event id within the stream's window is stored once."""
    subject = event.SUBJECT
    try:
        ack = await js.publish(
            subject,
            event.model_dump_json().encode(),
            timeout=timeout_s,
            stream=stream_for(subject),
            headers={"Nats-Msg-Id": event.id, "content-type": "application/json"},
        )
    except (nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError) as e:
        raise NotConnected(
            f"no stream stores {subject}: is the DSPEx stack running (`dspex up`)?"
        ) from e
    except nats.errors.TimeoutError as e:
        raise RequestTimeout(f"JetStream did not confirm {subject} in {timeout_s} s") from e
    except nats.js.errors.APIError as e:
        raise RemoteError(f"JetStream refused {subject}: {e}") from e
    return int(ack.seq)


def validation_message(error: ValidationError, *, limit: int = 10) -> str:
    """A pydantic error as one readable line per problem: ``payload.inputs: Field required``."""
    lines = []
    for item in error.errors()[:limit]:
        where = ".".join(str(p) for p in item["loc"]) or "(document)"
        lines.append(f"  {where}: {item['msg']}")
    more = error.error_count() - limit
    if more > 0:
        lines.append(f"  ... and {more} more")
    return "\n".join(lines)


def dead_letter(raw: bytes) -> DeadLettered | None:
    """``raw`` as a DeadLettered envelope, or None when it is something else."""
    try:
        data = json.loads(raw)
        if isinstance(data, dict) and data.get("type") == DeadLettered.TYPE:
            return DeadLettered.model_validate(data)
    except (ValueError, ValidationError):
        pass
    return None
