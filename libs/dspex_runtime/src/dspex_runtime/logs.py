"""Structured logs: one JSON object a line on stderr with the service, level, logger, message,
the correlation id of the message being handled, and the exception if any."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

correlation_id: ContextVar[str | None] = ContextVar("dspex_correlation_id", default=None)

# FastStream logs two lines per message; at volume that costs throughput and floods pipes
# (FACTS.md), so its per-message logger only passes warnings and errors.
FASTSTREAM_LOGGER = "dspex_runtime.faststream"
_QUIET = (FASTSTREAM_LOGGER, "faststream", "faststream.access", "uvicorn.access")

# Standard LogRecord attributes, and uvicorn's terminal-only duplicate of the message.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({})).keys()) | {
    "message",
    "asctime",
    "color_message",
}


@contextmanager
def correlation(value: str | None) -> Iterator[None]:
    """Tag every log line written inside the block with ``value``."""
    token = correlation_id.set(value)
    try:
        yield
    finally:
        correlation_id.reset(token)


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        if getattr(record, "correlation_id", None) is None:
            record.correlation_id = correlation_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record; ``extra=`` fields are kept."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": getattr(record, "service", None),
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", None),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str | int = "INFO", *, json: bool = True, service: str = "") -> None:
    """Send every log record to stderr (JSON lines, or plain text for humans), replacing any
    handler set before. Call once at start-up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter(service))
    if json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own handlers would print a second, unstructured copy.
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
