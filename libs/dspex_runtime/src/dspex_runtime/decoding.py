"""Turning a message's raw bytes into a contract model, or into the stable reason it cannot
be: ``too_large``, ``invalid_message``, ``unsupported_version`` or ``invalid_contract``."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import ValidationError

from dspex_contracts import Envelope

E = TypeVar("E", bound=Envelope[Any])

# Phrase of the Envelope validator for a wrong major version (dspex_contracts.envelope).
_WRONG_VERSION = "is not served on this subject"
MAX_REASON_TEXT = 4000


class DecodeError(Exception):
    """A message that can never be handled; ``reason`` is the dead-letter reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message[:MAX_REASON_TEXT]


def decode(model: type[E], raw: bytes, *, max_bytes: int) -> E:
    """Validate ``raw`` as ``model``, or raise :class:`DecodeError` with the reason."""
    if len(raw) > max_bytes:
        raise DecodeError("too_large", f"{len(raw)} bytes exceed the limit of {max_bytes}")
    try:
        return model.model_validate_json(raw)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        if any(err["type"] == "json_invalid" for err in errors):
            raise DecodeError("invalid_message", f"not valid JSON: {errors[0]['msg']}") from e
        if any(_WRONG_VERSION in str(err.get("msg", "")) for err in errors):
            raise DecodeError("unsupported_version", _summary(e)) from e
        raise DecodeError("invalid_contract", _summary(e)) from e


def _summary(error: ValidationError) -> str:
    parts = []
    for err in error.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "message"
        parts.append(f"{where}: {err['msg']}")
    return f"{error.title}: " + "; ".join(parts)


def peek_ids(raw: bytes) -> tuple[str | None, str | None]:
    """Best-effort (id, correlation_id) of a message that failed to decode, for logs and the
    dead letter; (None, None) when the body is not a JSON object."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: nesting deeper than the parser's stack (about 1,000 levels).
        return None, None
    if not isinstance(data, dict):
        return None, None
    msg_id, correlation = data.get("id"), data.get("correlation_id")
    return (
        msg_id if isinstance(msg_id, str) else None,
        correlation if isinstance(correlation, str) else None,
    )
