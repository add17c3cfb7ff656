"""DSPy's JSON prompt format with structured output: messages as ``dspy.JSONAdapter().format``
renders them (DSPy 3.4), a strict ``json_schema`` response format built from the output
fields, and a parser for a JSON object reply (bare, fenced or surrounded by prose).

Where we differ from DSPy, on purpose: the response format is a plain OpenAI-style dict (DSPy
hands litellm a pydantic model) named ``outputs``; it falls back to ``json_object`` when an
output type has no strict schema (open mappings such as ``dict[str, int]``, ``Any``, bare
``list``), where DSPy only checks for ``dict``; and no JSON repair beyond Python literals
(single quotes, trailing commas), since DSPy's ``json_repair`` is not a dependency of ours.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic

from ..errors import AdapterParseError
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
    user_content,
)
from ._values import python_type_hint, to_jsonable

SCHEMA_NAME = "outputs"
# Strings are consumed whole so that braces inside them do not count.
_BRACE_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[{}]', re.DOTALL)
_MAX_CANDIDATES = 32
# A schema with none of these keys accepts anything, which strict mode cannot express.
_CONSTRAINING_KEYS = frozenset({"type", "$ref", "anyOf", "oneOf", "allOf", "enum", "const"})


@dataclass(frozen=True, slots=True)
class _JSONPlan:
    layout: Layout
    system: str
    requirements: str
    response_format: dict[str, Any]


def _plan(signature: Signature) -> _JSONPlan:
    lay = layout(signature)
    shape = json.dumps({s.name: s.template for s in lay.outputs}, indent=2, ensure_ascii=False)
    parts = [
        STRUCTURE_INTRO,
        "Inputs will have the following structure:",
        lay.input_structure,
        "Outputs will be a JSON object with the following fields.",
        shape,
    ]
    structure = "\n\n".join(parts).strip()
    fields = ", then ".join(f"`{s.name}`{python_type_hint(s.annotation)}" for s in lay.outputs)
    requirements = f"Respond with a JSON object in the following order of fields: {fields}."
    return _JSONPlan(
        lay,
        f"{lay.field_list}\n{structure}\n{lay.objective}",
        requirements,
        response_format(signature),
    )


def _reply(slots: tuple[Slot, ...], values: Mapping[str, Any], missing: str | None) -> str:
    data = to_jsonable({s.name: values.get(s.name, missing) for s in slots})
    return json.dumps(data, indent=2, ensure_ascii=False)


# -- the response format ---------------------------------------------------------------------
def response_format(signature: Signature) -> dict[str, Any]:
    """OpenAI structured output for the signature's outputs: every field required, no extra
    properties; ``json_object`` when some output type has no strict schema."""
    fields: dict[str, Any] = {
        f"f{i}": (f.annotation, pydantic.Field(alias=f.name))
        for i, f in enumerate(signature.outputs)
    }
    # Aliases keep field names such as ``json`` or ``schema`` from clashing with BaseModel.
    model = pydantic.create_model(
        "Outputs", __config__=pydantic.ConfigDict(extra="forbid"), **fields
    )
    try:
        schema: dict[str, Any] = model.model_json_schema(by_alias=True)
    except (pydantic.PydanticUserError, pydantic.PydanticSchemaGenerationError):
        return {"type": "json_object"}
    if not _make_strict(schema):
        return {"type": "json_object"}
    return {
        "type": "json_schema",
        "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": schema},
    }


def _make_strict(node: dict[str, Any]) -> bool:
    """Require every property and forbid extra ones, in place; False if some part of the
    schema cannot be strict (an unconstrained schema, an object without declared
    properties)."""
    if not _CONSTRAINING_KEYS.intersection(node):
        return False
    if node.get("type") == "object":
        props = node.get("properties")
        if not isinstance(props, dict):
            return False
        node["required"] = list(props)
        node["additionalProperties"] = False
        for prop in props.values():
            if isinstance(prop, dict):
                prop.pop("default", None)
    children: list[Any] = []
    if isinstance(node.get("items"), dict):
        children.append(node["items"])
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        children.extend(node.get(key, ()))
    for key in ("properties", "$defs"):
        children.extend(node.get(key, {}).values())
    return all(_make_strict(child) for child in children if isinstance(child, dict))


# -- reading the reply -----------------------------------------------------------------------
def find_json_object(text: str) -> dict[str, Any] | None:
    """The reply's JSON object: the whole text, a fenced block, or the first balanced
    ``{...}`` in it that reads as JSON or as a Python dict literal."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.partition("\n")[2].strip()
        stripped = stripped.removesuffix("```").strip()
    found = _load_dict(stripped) if stripped.startswith("{") else None
    if found is not None:
        return found
    start, tries = text.find("{"), 0
    while start != -1 and tries < _MAX_CANDIDATES:
        tries += 1
        end = _balanced_end(text, start)
        if end is None:
            start = text.find("{", start + 1)
            continue
        found = _load_dict(text[start:end])
        if found is not None:
            return found
        start = text.find("{", end)
    return None


def _balanced_end(text: str, start: int) -> int | None:
    depth = 0
    for token in _BRACE_TOKENS.finditer(text, start):
        if token.group() == "{":
            depth += 1
        elif token.group() == "}":
            depth -= 1
            if depth == 0:
                return token.end()
    return None


def _load_dict(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return None
    return value if isinstance(value, dict) else None


class JSONAdapter:
    """Prompts asking for a JSON object, with a strict structured-output schema. Stateless
    apart from its cache of per-signature prompt parts."""

    name: str = "json"

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
        """A JSON reply holding ``outputs``, as a demo's assistant turn shows it."""
        return _reply(self._plans(signature).layout.outputs, outputs, None)

    def parse(self, signature: Signature, completion: str) -> dict[str, Any]:
        plan = self._plans(signature)
        found = find_json_object(completion)
        names = ", ".join(s.name for s in plan.layout.outputs)
        if found is None:
            raise AdapterParseError(
                f"the reply holds no JSON object; expected one with the keys {names}",
                completion=completion,
                adapter=self.name,
            )
        return read_outputs(plan.layout.outputs, found, completion, self.name, "keys")

    def request_params(self, signature: Signature) -> dict[str, Any]:
        """``response_format`` for the call. The dict is shared: do not mutate it."""
        return {"response_format": self._plans(signature).response_format}
