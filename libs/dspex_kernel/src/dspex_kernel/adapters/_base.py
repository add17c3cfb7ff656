"""The adapter port: render a signature, demos and inputs to chat messages; parse a reply."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..lm import Message
from ..signature import Signature


class Adapter(Protocol):
    """Renders prompts and parses replies for one prompt format.

    Invariants: ``format`` is pure (same arguments, same messages); ``parse`` returns a
    value for every output field of the signature, validated against its type and made
    JSON-ready (pydantic models become dicts), or raises ``AdapterParseError``."""

    name: str

    def format(
        self,
        signature: Signature,
        demos: Sequence[Mapping[str, Any]],
        inputs: Mapping[str, Any],
    ) -> list[Message]: ...

    def parse(self, signature: Signature, completion: str) -> dict[str, Any]: ...

    def request_params(self, signature: Signature) -> dict[str, Any]:
        """Extra request parameters this format needs (e.g. ``response_format``)."""
        ...
