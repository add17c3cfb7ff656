"""What handlers raise to steer acknowledgements, and the one function that maps any outcome
of a handler to an acknowledgement (ack, nack with delay, or dead letter)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from dspex_kernel.errors import DSPExError


class DeadLetter(Exception):
    """Permanent failure: give up on the message now and dead-letter it with ``reason``
    (a stable code such as ``unknown_program``)."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message or reason


class Retry(Exception):
    """Transient failure: redeliver the message after ``delay_s`` (default: the back-off of
    the settings for this attempt)."""

    def __init__(self, message: str = "retry", *, delay_s: float | None = None) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class Action(Enum):
    ACK = "ack"
    NACK = "nack"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class Decision:
    """What to do with a delivered message; ``outcome`` is the metrics label."""

    action: Action
    outcome: str
    delay_s: float | None = None
    reason: str = ""
    message: str = ""


ACK = Decision(Action.ACK, "ok")


def decide(error: BaseException, *, backoff_s: float) -> Decision:
    """The single place that maps a handler's failure to an acknowledgement.

    A message that keeps failing transiently is redelivered until ``max_deliver``; then the
    server's max-deliveries advisory dead-letters it (see :mod:`dspex_runtime.deadletters`)."""
    if isinstance(error, DeadLetter):
        return Decision(
            Action.DEAD_LETTER, "dead_lettered", reason=error.reason, message=error.message
        )
    if isinstance(error, Retry):
        delay = backoff_s if error.delay_s is None else error.delay_s
        return Decision(Action.NACK, "retried", delay_s=delay, message=str(error))
    if isinstance(error, DSPExError):
        if error.retryable:
            delay = backoff_s if error.retry_after is None else error.retry_after
            return Decision(Action.NACK, "retried", delay_s=delay, message=error.message)
        # A permanent library error the handler chose not to turn into an event: retrying
        # cannot help, so keep the message for an operator under the error's stable code.
        return Decision(
            Action.DEAD_LETTER, "dead_lettered", reason=error.code, message=error.message
        )
    return Decision(
        Action.NACK, "failed", delay_s=backoff_s, message=f"{type(error).__name__}: {error}"
    )
