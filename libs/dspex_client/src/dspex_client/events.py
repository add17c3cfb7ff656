"""Raw events from users: validate a document against the event the contract serves on a
subject, as a whole envelope or as just its payload (then wrapped in a new envelope)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from dspex_contracts import Envelope, event_for_subject

from .bus import validation_message
from .errors import InvalidInput

__all__ = ["build_event"]


def _payload_model(model: type[Envelope[Any]]) -> type[BaseModel]:
    annotation = model.model_fields["payload"].annotation
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        raise TypeError(f"{model.__name__}.payload is not a pydantic model")
    return annotation


def build_event(subject: str, data: Any) -> Envelope[Any]:
    """The envelope to publish on ``subject``. ``data`` with ``type`` and ``payload`` keys is
    an envelope; anything else is a payload. InvalidInput lists every problem."""
    try:
        model = event_for_subject(subject)
    except KeyError as e:
        raise InvalidInput(str(e.args[0])) from None
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{model.TYPE} must be a JSON object, got {type(data).__name__}")
    try:
        if "payload" in data and "type" in data:
            return model.model_validate(dict(data))
        payload = _payload_model(model).model_validate(dict(data))
        return model.create(payload)
    except ValidationError as e:
        raise InvalidInput(
            f"not a valid {model.TYPE} for {subject}:\n{validation_message(e)}"
        ) from None
