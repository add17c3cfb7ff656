"""What happens to one delivered message: decode it, call the handler inside its correlation
id, and settle it (ack, nack with delay, or dead letter) as :func:`errors.decide` says."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from faststream.nats import NatsMessage

from dspex_contracts import Envelope

from .deadletters import MaxDeliveries, dead_letter_event
from .decoding import DecodeError, decode, peek_ids
from .errors import ACK, Action, Decision, decide
from .logs import correlation

if TYPE_CHECKING:
    from .service import ServiceRuntime

_log = logging.getLogger(__name__)

E = TypeVar("E", bound=Envelope[Any])


@dataclass
class Delivery:
    """How a message reached the handler. ``deliveries`` counts attempts, this one included;
    call :meth:`in_progress` during long work so that JetStream does not redeliver it."""

    msg: NatsMessage = field(repr=False)
    subject: str
    deliveries: int
    headers: Mapping[str, str]
    stream_seq: int | None

    async def in_progress(self) -> None:
        await self.msg.in_progress()


Handler: TypeAlias = Callable[[E, Delivery], Awaitable[None]]
ReplyHandler: TypeAlias = Callable[[E], Awaitable[Envelope[Any]]]


class MessageHandling:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.metrics = runtime.metrics

    async def consume(
        self, model: type[E], handler: Handler[E], msg: NatsMessage, *, subject: str
    ) -> None:
        started = time.perf_counter()
        raw: bytes = msg.body
        metadata = msg.raw_message.metadata
        delivery = Delivery(
            msg=msg,
            subject=msg.raw_message.subject or subject,
            deliveries=metadata.num_delivered or 1,
            headers=msg.headers,
            stream_seq=metadata.sequence.stream,
        )
        try:
            event = decode(model, raw, max_bytes=self.settings.max_payload_bytes)
        except DecodeError as e:
            original_id, correlation_id = peek_ids(raw)
            with correlation(correlation_id or original_id):
                decision = Decision(
                    Action.DEAD_LETTER, "dead_lettered", reason=e.reason, message=e.message
                )
                await self._settle(msg, delivery, decision, raw, original_id, correlation_id)
        else:
            with correlation(event.correlation_id or event.id):
                try:
                    await handler(event, delivery)
                except Exception as error:
                    decision = decide(
                        error, backoff_s=self.settings.backoff_for(delivery.deliveries)
                    )
                    if decision.action is not Action.DEAD_LETTER:
                        _log.warning(
                            "handler failed on attempt %d of %d: %s",
                            delivery.deliveries,
                            self.settings.max_deliver,
                            decision.message,
                            exc_info=decision.outcome == "failed",
                        )
                else:
                    decision = ACK
                await self._settle(msg, delivery, decision, raw, event.id, event.correlation_id)
        self.metrics.observe(subject, time.perf_counter() - started)

    async def _settle(
        self,
        msg: NatsMessage,
        delivery: Delivery,
        decision: Decision,
        raw: bytes,
        original_id: str | None,
        correlation_id: str | None,
    ) -> None:
        """The only place that acknowledges a consumed message."""
        outcome = decision.outcome
        if decision.action is Action.ACK:
            await msg.ack()
        elif decision.action is Action.DEAD_LETTER:
            metadata = msg.raw_message.metadata
            try:
                await self.runtime.dead_letter(
                    subject=delivery.subject,
                    reason=decision.reason,
                    message=decision.message,
                    raw=raw,
                    original_id=msg.headers.get("Nats-Msg-Id") or original_id,
                    correlation_id=correlation_id,
                    consumer=metadata.consumer,
                    stream=metadata.stream,
                    stream_seq=delivery.stream_seq,
                    deliveries=delivery.deliveries,
                )
            except Exception:
                # Keep the message rather than lose it: it comes back and is tried again.
                _log.exception("could not publish a dead letter; the message will be redelivered")
                await msg.nack(delay=self.settings.backoff_for(delivery.deliveries))
                outcome = "failed"
            else:
                await msg.reject()
        elif delivery.deliveries >= self.settings.max_deliver:
            # Last attempt: no point waiting; the server now announces max deliveries and the
            # advisory subscriber dead-letters the message.
            await msg.nack()
        else:
            await msg.nack(delay=decision.delay_s)
        self.metrics.count(delivery.subject, outcome)

    async def max_deliveries(self, advisory: MaxDeliveries) -> None:
        """Dead-letter the message a consumer gave up on, fetched back from its stream."""
        js = self.runtime.broker.config.connection_state.stream
        raw, subject, msg_id = b"", "", None
        note = f"failed {advisory.deliveries} deliveries"
        try:
            stored = await js.get_msg(advisory.stream, advisory.stream_seq)
            raw, subject = stored.data or b"", stored.subject or ""
            msg_id = (stored.headers or {}).get("Nats-Msg-Id")
        except Exception as e:
            note += f"; the original could not be read back ({type(e).__name__}: {e})"
        original_id, correlation_id = peek_ids(raw)
        with correlation(correlation_id or original_id):
            await self.runtime.dead_letter(
                subject=subject,
                reason="max_deliveries",
                message=note,
                raw=raw,
                original_id=msg_id or original_id,
                correlation_id=correlation_id,
                consumer=advisory.consumer,
                stream=advisory.stream,
                stream_seq=advisory.stream_seq,
                deliveries=advisory.deliveries,
            )

    async def reply(
        self, model: type[E], handler: ReplyHandler[E], msg: NatsMessage, *, subject: str
    ) -> bytes:
        """Answer one request; never raises, so the caller always gets a reply."""
        started = time.perf_counter()
        raw: bytes = msg.body
        try:
            event = decode(model, raw, max_bytes=self.settings.max_payload_bytes)
        except DecodeError as e:
            original_id, correlation_id = peek_ids(raw)
            self.metrics.count(subject, "dead_lettered")
            return self._error_reply(subject, e.reason, e.message, raw, original_id, correlation_id)
        with correlation(event.correlation_id or event.id):
            try:
                answer = await handler(event)
            except Exception as error:
                decision = decide(error, backoff_s=0.0)
                reason = decision.reason or (
                    "unavailable" if decision.outcome == "retried" else "internal_error"
                )
                _log.warning(
                    "request on %s failed: %s",
                    subject,
                    decision.message,
                    exc_info=decision.outcome == "failed",
                )
                self.metrics.count(subject, "failed")
                return self._error_reply(
                    subject, reason, decision.message, raw, event.id, event.correlation_id
                )
            finally:
                self.metrics.observe(subject, time.perf_counter() - started)
        self.metrics.count(subject, "ok")
        return answer.model_dump_json().encode()

    def _error_reply(
        self,
        subject: str,
        reason: str,
        message: str,
        raw: bytes,
        original_id: str | None,
        correlation_id: str | None,
    ) -> bytes:
        event = dead_letter_event(
            service=self.settings.service_name,
            subject=subject,
            reason=reason,
            message=message,
            raw=raw,
            original_id=original_id,
            correlation_id=correlation_id,
        )
        return event.model_dump_json().encode()
