"""Test helpers for code built on the kernel: an in-memory scripted LM and builders for
chat-format replies. For unit tests only; integration tests use the simulated LM."""

from __future__ import annotations

import re
from collections.abc import Callable

from .lm import LMRequest, LMResponse, Usage

_MARKER = re.compile(r"`\[\[ ## (\w+) ## \]\]`")


class ScriptedLM:
    """An LM fake: ``reply(request) -> text``. Records every request it gets."""

    def __init__(self, reply: Callable[[LMRequest], str]) -> None:
        self.reply = reply
        self.requests: list[LMRequest] = []

    async def complete(self, request: LMRequest) -> LMResponse:
        self.requests.append(request)
        usage = Usage(calls=1, prompt_tokens=10, completion_tokens=5)
        return LMResponse(self.reply(request), request.model, usage)


def requested_fields(request: LMRequest) -> list[str]:
    """The output fields a chat-format request asks for, read from its last message."""
    fields = _MARKER.findall(request.messages[-1]["content"])
    return [f for f in fields if f != "completed"]


def chat_reply(**values: object) -> str:
    """A reply in the ``[[ ## field ## ]]`` format with the given field values."""
    body = "".join(f"[[ ## {k} ## ]]\n{v}\n\n" for k, v in values.items())
    return body + "[[ ## completed ## ]]"
