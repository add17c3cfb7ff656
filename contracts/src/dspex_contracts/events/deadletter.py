"""DeadLettered: a message a service could not process, kept with the reason."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from .. import subjects
from ..envelope import Envelope, Strict


class DeadLetteredPayload(Strict):
    """A message given up on, the reason, and where to find the original."""

    subject: str = Field(
        description="Subject the message arrived on.", examples=["dspex.exec.requested.v1"]
    )
    reason: str = Field(
        max_length=100,
        description="Stable reason code: invalid_message, invalid_contract, unknown_program, "
        "too_large, max_deliveries, rejected, ...",
        examples=["invalid_contract"],
    )
    message: str = Field(max_length=4000, description="Human-readable explanation.")
    service: str = Field(description="Service that gave up on the message.", examples=["kernel"])
    consumer: str | None = Field(default=None, description="Durable consumer name.")
    stream: str | None = Field(default=None, description="Stream holding the original.")
    stream_seq: int | None = Field(default=None, description="Its sequence in that stream.")
    deliveries: int | None = Field(default=None, description="Delivery attempts made.")
    original_id: str | None = Field(
        default=None, description="Nats-Msg-Id of the original, if it had one."
    )
    original: str = Field(
        default="",
        description="The original body (UTF-8, undecodable bytes replaced), truncated.",
    )
    original_size: int = Field(default=0, ge=0, description="Size of the original in bytes.")


class DeadLettered(Envelope[DeadLetteredPayload]):
    """A message was given up on; the original and the reason are kept for an operator."""

    TYPE: ClassVar[str] = "DeadLettered"
    SUBJECT: ClassVar[str] = subjects.DEAD_LETTER
