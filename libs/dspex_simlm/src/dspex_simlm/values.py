"""Plausible, deterministic values for an output field from its declared type or JSON schema,
and how a value is written in the chat (marker) and JSON reply forms."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .prompt import OutputField
from .skill import stable_int, stable_unit

OPENERS = (
    "A brief answer concerning",
    "Here is a short response about",
    "This addresses",
    "In short, regarding",
)
MAX_DEPTH = 4


def _strip_optional(label: str) -> str:
    label = label.strip()
    for prefix in ("Optional[", "typing.Optional["):
        if label.startswith(prefix) and label.endswith("]"):
            return label[len(prefix) : -1].strip()
    if label.endswith("| None"):
        return label[: -len("| None")].strip()
    union = re.fullmatch(r"(?:typing\.)?Union\[(.*), (?:None|NoneType)\]", label)
    return union.group(1).strip() if union else label


def _split_args(inner: str) -> list[str]:
    """Top-level comma split of ``dict[str, list[int]]``'s arguments."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[start:i].strip())
            start = i + 1
    parts.append(inner[start:].strip())
    return [p for p in parts if p]


def sentence(key: str, context: str) -> str:
    """A short deterministic sentence that mentions the start of ``context``."""
    words = context.split()[:8]
    topic = " ".join(words).rstrip(".,;:?!") or "the request"
    opener = OPENERS[stable_int(key, 0, len(OPENERS) - 1, "opener")]
    return f"{opener} {topic}."


def from_label(label: str, key: str, context: str, depth: int = 0) -> Any:
    """A value of the Python type named by ``label`` (DSPy's type label syntax)."""
    label = _strip_optional(label)
    base, _, rest = label.partition("[")
    base = base.strip().lower().removeprefix("typing.")
    inner = rest[:-1] if rest.endswith("]") else ""
    if depth > MAX_DEPTH:
        return None
    if base == "int":
        return stable_int(key, 1, 99, "int")
    if base == "float":
        return round(stable_unit(key, "float") * 100, 2)
    if base == "bool":
        return stable_unit(key, "bool") < 0.5
    if base == "literal" and inner:
        try:
            options = list(ast.literal_eval(f"[{inner}]"))
        except (ValueError, SyntaxError):
            options = [o.strip("'\" ") for o in _split_args(inner)]
        return options[stable_int(key, 0, len(options) - 1, "literal")] if options else ""
    if base in ("list", "tuple", "set", "sequence"):
        args = _split_args(inner) or ["str"]
        return [from_label(args[0], f"{key}/{i}", context, depth + 1) for i in range(2)]
    if base in ("dict", "mapping"):
        args = _split_args(inner)
        value_label = args[1] if len(args) > 1 else "str"
        return {"key": from_label(value_label, f"{key}/v", context, depth + 1)}
    return sentence(key, context)  # str, Any, or a class we have no schema for


def from_schema(
    schema: Mapping[str, Any], key: str, context: str, defs: Mapping[str, Any], depth: int = 0
) -> Any:
    """A value valid for a JSON schema (the subset pydantic emits for DSPy types)."""
    if depth > MAX_DEPTH:
        return None
    defs = {**defs, **schema.get("$defs", {})}
    if "$ref" in schema:
        target = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
        return from_schema(target, key, context, defs, depth + 1)
    if schema.get("enum"):
        options = list(schema["enum"])
        return options[stable_int(key, 0, len(options) - 1, "enum")]
    if "const" in schema:
        return schema["const"]
    for combinator in ("anyOf", "oneOf", "allOf"):
        choices = [c for c in schema.get(combinator, []) if c.get("type") != "null"]
        if choices:
            return from_schema(choices[0], key, context, defs, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or "properties" in schema:
        props: Mapping[str, Any] = schema.get("properties", {})
        if not props and isinstance(schema.get("additionalProperties"), dict):
            extra = schema["additionalProperties"]
            return {"key": from_schema(extra, f"{key}/v", context, defs, depth + 1)}
        return {
            name: from_schema(sub, f"{key}/{name}", context, defs, depth + 1)
            for name, sub in props.items()
        }
    if kind == "array":
        items = schema.get("items", {"type": "string"})
        count = max(2, int(schema.get("minItems", 0)))
        return [from_schema(items, f"{key}/{i}", context, defs, depth + 1) for i in range(count)]
    simple = {"integer": "int", "number": "float", "boolean": "bool", "null": "none"}
    if kind == "null":
        return None
    return from_label(simple.get(str(kind), "str"), key, context, depth)


def plausible(output: OutputField, key: str, context: str) -> Any:
    """A well-formed value for any declared output field."""
    field_key = f"{key}/{output.name}"
    if output.schema is not None:
        return from_schema(output.schema, field_key, context, {})
    if output.options:
        return output.options[stable_int(field_key, 0, len(output.options) - 1, "option")]
    return from_label(output.type_label or "str", field_key, context)


def coerce(value: Any, label: str) -> Any:
    """A known answer converted to the field's declared scalar type where that is lossless."""
    label = _strip_optional(label).lower()
    try:
        if label == "int" and not isinstance(value, bool):
            number = float(value)
            return int(number) if number.is_integer() else value
        if label == "float" and not isinstance(value, bool):
            return float(value)
    except (TypeError, ValueError):
        return value
    if label == "str" and not isinstance(value, str):
        return json.dumps(value) if isinstance(value, dict | list) else str(value)
    return value


def chat_text(value: Any) -> str:
    """How a value appears under its ``[[ ## field ## ]]`` marker."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def render(values: Mapping[str, Any], order: Sequence[str], json_mode: bool) -> str:
    """The whole reply: a JSON object, or marker sections ending with ``completed``."""
    if json_mode:
        return json.dumps({name: values[name] for name in order}, indent=2, ensure_ascii=False)
    body = "\n\n".join(f"[[ ## {name} ## ]]\n{chat_text(values[name])}" for name in order)
    return f"{body}\n\n[[ ## completed ## ]]"
