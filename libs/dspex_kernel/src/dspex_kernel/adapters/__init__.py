"""Adapters turn a signature, demos and inputs into chat messages and parse the LM's reply:
``chat`` is DSPy's ``[[ ## field ## ]]`` format, ``json`` asks for a JSON object with a strict
structured-output schema."""

from __future__ import annotations

from ..errors import ProgramError
from ._base import Adapter
from .chat import ChatAdapter
from .json import JSONAdapter

_ADAPTERS: dict[str, Adapter] = {"chat": ChatAdapter(), "json": JSONAdapter()}


def get_adapter(name: str) -> Adapter:
    """The shared adapter called ``name`` (``"chat"`` or ``"json"``)."""
    try:
        return _ADAPTERS[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(_ADAPTERS))
        raise ProgramError(f"unknown adapter {name!r}; known adapters: {known}") from None


__all__ = ["Adapter", "ChatAdapter", "JSONAdapter", "get_adapter"]
