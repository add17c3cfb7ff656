"""The envelope every DSPEx message travels in: identity (also the ``Nats-Msg-Id``),
type, major version, time, correlation and causation, and a typed payload."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

P = TypeVar("P", bound=BaseModel)

MAX_ID_LENGTH = 200


class Strict(BaseModel):
    """Base of every model we accept: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


def new_id() -> str:
    return uuid.uuid4().hex


def utc_now() -> datetime:
    return datetime.now(UTC)


class Envelope(Strict, Generic[P]):
    """A versioned event. Subclasses fix ``TYPE``, ``SUBJECT`` and the payload model."""

    TYPE: ClassVar[str] = ""
    SUBJECT: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    id: str = Field(
        default_factory=new_id,
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="Unique message id; also the Nats-Msg-Id used for de-duplication. "
        "Publishing the same id twice within the stream's window stores it once.",
        examples=["0f8b6c1e9d7a4c3b8e2f1a0b9c8d7e6f"],
    )
    type: str = Field(description="The event type.", examples=["ExecuteRequested"])
    version: int = Field(description="Major version of the event's schema.", examples=[1])
    occurred_at: datetime = Field(
        default_factory=utc_now,
        description="When the event happened (UTC, ISO 8601).",
        examples=["2026-11-25T12:00:00Z"],
    )
    correlation_id: str | None = Field(
        default=None,
        max_length=MAX_ID_LENGTH,
        description="Id shared by every message of one conversation (e.g. a run).",
        examples=["run-42"],
    )
    causation_id: str | None = Field(
        default=None,
        max_length=MAX_ID_LENGTH,
        description="Id of the message that caused this one.",
        examples=["0f8b6c1e9d7a4c3b8e2f1a0b9c8d7e6f"],
    )
    payload: P = Field(description="The event's data.")

    @model_validator(mode="before")
    @classmethod
    def _type_and_version(cls, data: Any) -> Any:
        # A wrong type or major version is a different contract: reject it by name.
        if cls.TYPE and isinstance(data, dict):
            if data.get("type") != cls.TYPE:
                raise ValueError(f"type must be {cls.TYPE!r}, got {data.get('type')!r}")
            if data.get("version") != cls.VERSION:
                raise ValueError(
                    f"{cls.TYPE} version {data.get('version')!r} is not served on this "
                    f"subject; it serves version {cls.VERSION}"
                )
        return data

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        if cls.TYPE:
            target["properties"]["type"]["const"] = cls.TYPE
            target["properties"]["version"]["const"] = cls.VERSION
            target["title"] = cls.TYPE
            target.setdefault("description", (cls.__doc__ or "").strip())
        return schema

    @classmethod
    def create(
        cls,
        payload: P,
        *,
        id: str | None = None,
        correlation_id: str | None = None,
        causation: Envelope[Any] | None = None,
    ) -> Self:
        """A new event of this type; ``causation`` links it to the message it answers and
        inherits that message's correlation id."""
        data: dict[str, Any] = {"type": cls.TYPE, "version": cls.VERSION, "payload": payload}
        if id is not None:
            data["id"] = id
        if causation is not None:
            data["causation_id"] = causation.id
            data["correlation_id"] = correlation_id or causation.correlation_id
        elif correlation_id is not None:
            data["correlation_id"] = correlation_id
        return cls.model_validate(data)
