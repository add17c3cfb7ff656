"""Pure parts of the runtime, without a broker: the error-to-acknowledgement mapping, decoding
reasons, dead-letter events, JSON logs with correlation ids, and finding nats-server."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from runtime_helpers import request

from dspex_contracts import ExecuteRequested
from dspex_kernel.errors import InputError, LMRateLimitError, LMUnavailableError
from dspex_runtime import DeadLetter, Retry, configure_logging
from dspex_runtime.deadletters import ORIGINAL_LIMIT, MaxDeliveries, dead_letter_event
from dspex_runtime.decoding import DecodeError, decode, peek_ids
from dspex_runtime.errors import Action, decide
from dspex_runtime.logs import correlation
from dspex_runtime.testing.nats import nats_server_binary

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("error", "action", "outcome", "delay", "reason"),
    [
        (
            DeadLetter("unknown_program", "no such program"),
            Action.DEAD_LETTER,
            "dead_lettered",
            None,
            "unknown_program",
        ),
        (Retry("busy"), Action.NACK, "retried", 7.0, ""),
        (Retry("busy", delay_s=0.5), Action.NACK, "retried", 0.5, ""),
        (LMRateLimitError("slow down", retry_after=3.0), Action.NACK, "retried", 3.0, ""),
        (LMUnavailableError("503"), Action.NACK, "retried", 7.0, ""),
        (
            InputError("missing question"),
            Action.DEAD_LETTER,
            "dead_lettered",
            None,
            "invalid_input",
        ),
        (RuntimeError("boom"), Action.NACK, "failed", 7.0, ""),
    ],
    ids=["dead-letter", "retry", "retry-delay", "retry-after", "lm-5xx", "permanent", "other"],
)
def test_every_failure_maps_to_one_acknowledgement(
    error: Exception, action: Action, outcome: str, delay: float | None, reason: str
) -> None:
    decision = decide(error, backoff_s=7.0)
    assert (decision.action, decision.outcome, decision.delay_s, decision.reason) == (
        action,
        outcome,
        delay,
        reason,
    )


def _reason(raw: bytes, max_bytes: int = 10_000) -> str:
    with pytest.raises(DecodeError) as caught:
        decode(ExecuteRequested, raw, max_bytes=max_bytes)
    return caught.value.reason


def test_decoding_names_why_a_message_cannot_be_handled() -> None:
    good = json.loads(request("ok").model_dump_json())
    assert decode(ExecuteRequested, json.dumps(good).encode(), max_bytes=10_000).id == good["id"]
    assert _reason(b"{") == "invalid_message"
    assert _reason(b"[1, 2]") == "invalid_contract"
    assert _reason(json.dumps({**good, "version": 3}).encode()) == "unsupported_version"
    assert _reason(json.dumps({**good, "type": "Other"}).encode()) == "invalid_contract"
    assert _reason(json.dumps({**good, "extra": 1}).encode()) == "invalid_contract"
    assert _reason(json.dumps(good).encode(), max_bytes=10) == "too_large"


def test_peek_ids_is_best_effort() -> None:
    assert peek_ids(b'{"id": "a", "correlation_id": "c"}') == ("a", "c")
    assert peek_ids(b'{"id": 3}') == (None, None)
    assert peek_ids(b"\xff") == (None, None)
    deep = b"[" * 5000 + b"]" * 5000  # deeper than json's recursion limit
    assert peek_ids(deep) == (None, None)
    with pytest.raises(DecodeError) as info:
        decode(ExecuteRequested, deep, max_bytes=1 << 20)
    assert info.value.reason == "invalid_message"


def test_dead_letter_event_keeps_the_original_and_a_stable_id() -> None:
    raw = b"x" * (ORIGINAL_LIMIT + 10)
    event = dead_letter_event(
        service="kernel",
        subject="s",
        reason="too_large",
        message="",
        raw=raw,
        original_id="o" * 500,
        correlation_id="corr",
        stream="DSPEX_EXEC",
        stream_seq=42,
    )
    again = dead_letter_event(
        service="kernel",
        subject="s",
        reason="too_large",
        message="",
        raw=raw,
        stream="DSPEX_EXEC",
        stream_seq=42,
    )
    assert event.id == again.id == "dlq-DSPEX_EXEC-none-42"
    other = dead_letter_event(
        service="registry",
        subject="s",
        reason="too_large",
        message="",
        raw=raw,
        consumer="registry",
        stream="DSPEX_EXEC",
        stream_seq=42,
    )
    assert other.id == "dlq-DSPEX_EXEC-registry-42"  # another consumer's letter is kept
    assert event.payload.original_size == len(raw)
    assert len(event.payload.original) == ORIGINAL_LIMIT
    assert event.payload.message == "too_large"
    assert event.causation_id is None  # an over-long id is kept in the payload only
    assert event.payload.original_id == "o" * 500
    assert event.correlation_id == "corr"
    assert dead_letter_event(service="k", subject="s", reason="r", message="m", raw=b"").id != (
        dead_letter_event(service="k", subject="s", reason="r", message="m", raw=b"").id
    )


def test_max_deliveries_advisory_is_parsed() -> None:
    advisory = MaxDeliveries.parse(
        b'{"type": "io.nats.jetstream.advisory.v1.max_deliver", "stream": "DSPEX_EXEC",'
        b' "consumer": "kernel", "stream_seq": 7, "deliveries": 5}'
    )
    assert advisory == MaxDeliveries("DSPEX_EXEC", "kernel", 7, 5)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_logs_carry_service_and_correlation_id(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("INFO", json=True, service="kernel")
    log = logging.getLogger("dspex.test")

    with correlation("run-42"):
        log.info("handled %s", "it", extra={"stream_seq": 7})
    log.debug("dropped below INFO")
    logging.getLogger("dspex_runtime.faststream").info("per-message noise")
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("failed")

    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "handled it"
    assert first["service"] == "kernel"
    assert first["level"] == "INFO"
    assert first["logger"] == "dspex.test"
    assert first["correlation_id"] == "run-42"
    assert first["stream_seq"] == 7
    assert second["correlation_id"] is None
    assert "ValueError: bad" in second["exc_info"]


def test_the_nats_server_binary_comes_from_the_wheel() -> None:
    binary = nats_server_binary()
    assert binary.name == "nats-server"
    assert binary.is_file()
