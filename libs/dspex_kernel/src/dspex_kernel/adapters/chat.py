"""DSPy's chat prompt format: fields as ``[[ ## name ## ]]`` sections, demos as user and
assistant turns, and the parser that reads a reply's sections back into typed outputs.
Messages are byte-for-byte those of ``dspy.ChatAdapter().format`` (DSPy 3.4)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..lm import Message
from ..signature import Signature
from ._prompt import (
    STRUCTURE_INTRO,
    Layout,
    PerSignature,
    Slot,
    demo_turns,
    layout,
    read_outputs,
    sections,
    user_content,
)
from ._values import python_type_hint, render_value

COMPLETED = "[[ ## completed ## ]]"
# A section header starts a line (after optional blanks), as DSPy requires.
_HEADER = re.compile(r"^[^\S\n]*\[\[ ## (\w+) ## \]\]", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class _ChatPlan:
    layout: Layout
    system: str
    requirements: str


def _plan(signature: Signature) -> _ChatPlan:
    lay = layout(signature)
    outputs = sections((s.name, s.template) for s in lay.outputs)
    structure = "\n\n".join([STRUCTURE_INTRO, lay.input_structure, outputs, COMPLETED]).strip()
    steps = ", then ".join(
        f"`[[ ## {s.name} ## ]]`{python_type_hint(s.annotation)}" for s in lay.outputs
    )
    requirements = (
        f"Respond with the corresponding output fields, starting with the field {steps}, "
        f"and then ending with the marker for `{COMPLETED}`."
    )
    return _ChatPlan(lay, f"{lay.field_list}\n{structure}\n{lay.objective}", requirements)


def _reply(slots: tuple[Slot, ...], values: Mapping[str, Any], missing: str | None) -> str:
    body = sections(
        (s.name, render_value(s.annotation, values.get(s.name, missing))) for s in slots
    )
    return f"{body}\n\n{COMPLETED}\n"


def split_sections(completion: str) -> dict[str, str]:
    """The text of each ``[[ ## name ## ]]`` section, first occurrence winning; text before
    the first header and unknown sections are kept but ignored by the caller."""
    # DSPy reads the reply line by line; joining ``splitlines`` gives the same line breaks.
    text = "\n".join(completion.splitlines())
    headers = list(_HEADER.finditer(text))
    found: dict[str, str] = {}
    for i, match in enumerate(headers):
        name = match.group(1)
        if name in found:
            continue
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        first, newline, rest = text[match.end() : end].partition("\n")
        first = first.strip()
        found[name] = (first + newline + rest if first else rest).strip()
    return found


class ChatAdapter:
    """Prompts in DSPy's ``[[ ## field ## ]]`` format. Stateless apart from its cache of
    per-signature prompt parts."""

    name: str = "chat"

    def __init__(self) -> None:
        self._plans = PerSignature(_plan)

    def format(
        self,
        signature: Signature,
        demos: Sequence[Mapping[str, Any]],
        inputs: Mapping[str, Any],
    ) -> list[Message]:
        plan = self._plans(signature)
        messages: list[Message] = [{"role": "system", "content": plan.system}]
        if demos:
            messages.extend(demo_turns(plan.layout, demos, _reply))
        content = user_content(plan.layout.inputs, inputs, requirements=plan.requirements)
        messages.append({"role": "user", "content": content})
        return messages

    def format_reply(self, signature: Signature, outputs: Mapping[str, Any]) -> str:
        """An assistant reply holding ``outputs``, as a demo's assistant turn shows it."""
        return _reply(self._plans(signature).layout.outputs, outputs, None)

    def parse(self, signature: Signature, completion: str) -> dict[str, Any]:
        plan = self._plans(signature)
        found = split_sections(completion)
        return read_outputs(plan.layout.outputs, found, completion, self.name, "sections")

    def request_params(self, signature: Signature) -> dict[str, Any]:
        return {}
