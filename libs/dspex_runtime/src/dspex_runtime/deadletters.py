"""Dead letters: the DeadLettered event that keeps a message given up on with its reason, and
the subject of JetStream's advisory for a message that ran out of deliveries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dspex_contracts import DeadLettered, DeadLetteredPayload
from dspex_contracts.envelope import MAX_ID_LENGTH

# Enough of the original for an operator to see what it was; the whole of it stays in its
# stream (stream + stream_seq) when it came from one.
ORIGINAL_LIMIT = 64 * 1024
_MAX_REASON = 100
_MAX_MESSAGE = 4000


def max_deliveries_subject(stream: str, consumer: str) -> str:
    """Where the server announces that a message reached the consumer's ``max_deliver``."""
    return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}"


@dataclass(frozen=True)
class MaxDeliveries:
    stream: str
    consumer: str
    stream_seq: int
    deliveries: int

    @classmethod
    def parse(cls, raw: bytes) -> MaxDeliveries:
        data = json.loads(raw)
        return cls(
            stream=str(data["stream"]),
            consumer=str(data["consumer"]),
            stream_seq=int(data["stream_seq"]),
            deliveries=int(data["deliveries"]),
        )


def _short_id(value: str | None) -> str | None:
    # Ids peeked from an undecodable message may be anything: keep only valid ones.
    return value if value and len(value) <= MAX_ID_LENGTH else None


def dead_letter_event(
    *,
    service: str,
    subject: str,
    reason: str,
    message: str,
    raw: bytes,
    original_id: str | None = None,
    correlation_id: str | None = None,
    consumer: str | None = None,
    stream: str | None = None,
    stream_seq: int | None = None,
    deliveries: int | None = None,
) -> DeadLettered:
    """The DeadLettered event for ``raw``. A message from a stream gets an id derived from
    (stream, consumer, sequence): dead-lettering it twice for one consumer (two replicas, a
    retried publish) stores it once."""
    payload = DeadLetteredPayload(
        subject=subject,
        reason=reason[:_MAX_REASON],
        message=(message or reason)[:_MAX_MESSAGE],
        service=service,
        consumer=consumer,
        stream=stream,
        stream_seq=stream_seq,
        deliveries=deliveries,
        original_id=original_id,
        original=raw[:ORIGINAL_LIMIT].decode("utf-8", errors="replace"),
        original_size=len(raw),
    )
    data: dict[str, Any] = {
        "type": DeadLettered.TYPE,
        "version": DeadLettered.VERSION,
        "payload": payload,
        "correlation_id": _short_id(correlation_id),
        "causation_id": _short_id(original_id),
    }
    if stream is not None and stream_seq is not None:
        # Two replicas of one consumer give one id; two consumers of the message (two
        # services reject it) give two, so that each one's reason is kept.
        data["id"] = f"dlq-{stream}-{consumer or 'none'}-{stream_seq}"
    return DeadLettered.model_validate(data)
