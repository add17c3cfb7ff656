"""Read a chat request the way a DSPy-format prompt is written: input and output field lists,
the objective, demos as user/assistant turns, the final inputs, and whether JSON is wanted."""

from __future__ import annotations

import itertools
import json
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MARKER = re.compile(r"^\s*\[\[ ## (\w+) ## \]\]", re.MULTILINE)
FIELD_LINE = re.compile(r"^\s*\d+\. `([^`]+)` \(")
NOTE = re.compile(r"\{(\w+)\}\s+# note: the value you produce (.*)$", re.MULTILINE)
OBJECTIVE = "your objective is:"
# The output-format reminder that ends the final user message ("Respond with the ...").
REMINDER = re.compile(r"\n\s*\n(?=Respond with )")
JSON_OUTPUT_CUES = ("respond with a json object", "outputs will be a json object")


@dataclass(frozen=True, slots=True)
class OutputField:
    name: str
    type_label: str = ""
    schema: Mapping[str, Any] | None = None
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Demo:
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ParsedPrompt:
    """``structured`` is false for plain chat (no output fields could be found)."""

    structured: bool
    output_fields: tuple[OutputField, ...] = ()
    instructions: str = ""
    inputs: Mapping[str, Any] = field(default_factory=dict)
    demos: tuple[Demo, ...] = ()
    json_mode: bool = False
    last_user: str = ""


def sections(text: str) -> dict[str, str]:
    """``[[ ## name ## ]]`` sections of a message; the first occurrence of a name wins."""
    found: dict[str, str] = {}
    matches = list(MARKER.finditer(text))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        found.setdefault(match.group(1), text[match.end() : end].strip())
    return found


def _type_label(line: str, start: int) -> str:
    """The parenthesised type after a field name, with nested brackets and quotes."""
    depth, quote = 0, ""
    for i in range(start, len(line)):
        ch = line[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                return line[start:i].strip()
            depth -= 1
    return line[start:].strip()


def _field_list(system: str, heading: str) -> list[tuple[str, str]]:
    """``[(name, type_label)]`` from a numbered list under ``heading``."""
    at = system.find(heading)
    if at < 0:
        return []
    fields: list[tuple[str, str]] = []
    for line in system[at + len(heading) :].splitlines()[1:]:
        match = FIELD_LINE.match(line)
        if match:
            fields.append((match.group(1), _type_label(line, match.end())))
        elif line.strip().startswith(("Your ", "All interactions", "[[ ##")):
            break
    return fields


def _notes(system: str) -> dict[str, str]:
    """The ``# note: the value you produce ...`` hint of each output field, in the chat form
    or inside the JSON template of the JSON form."""
    notes = {m.group(1): m.group(2).strip() for m in NOTE.finditer(system)}
    cue_at = system.lower().find(JSON_OUTPUT_CUES[1])
    brace_at = system.find("{", cue_at) if cue_at >= 0 else -1
    if brace_at < 0:
        return notes
    try:
        template, _ = json.JSONDecoder().raw_decode(system[brace_at:])
    except json.JSONDecodeError:
        return notes
    if isinstance(template, dict):
        for value in template.values():
            match = NOTE.search(str(value))
            if match:
                notes[match.group(1)] = match.group(2).strip()
    return notes


def _from_note(note: str) -> tuple[Mapping[str, Any] | None, tuple[str, ...]]:
    schema_at = note.find("JSON schema:")
    if schema_at >= 0:
        try:
            schema, _ = json.JSONDecoder().raw_decode(note[schema_at + 12 :].strip())
            return (schema if isinstance(schema, dict) else None), ()
        except json.JSONDecodeError:
            return None, ()
    if "one of:" in note:
        return None, tuple(o.strip() for o in note.split("one of:", 1)[1].split(";") if o.strip())
    return None, ()


def _schema_of(response_format: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if not response_format or response_format.get("type") != "json_schema":
        return None
    wrapper = response_format.get("json_schema") or {}
    schema = wrapper.get("schema") if isinstance(wrapper, Mapping) else None
    return schema if isinstance(schema, Mapping) else None


def _output_fields(
    system: str, last_user: str, response_format: Mapping[str, Any] | None
) -> tuple[OutputField, ...]:
    listed = _field_list(system, "Your output fields are:")
    if not listed:  # fall back to the reminder in the final user message
        names = re.findall(r"`\[\[ ## (\w+) ## \]\]`", last_user)
        if not names and "in the following order of fields:" in last_user:
            names = re.findall(r"`(\w+)`", last_user.split("in the following order of fields:")[1])
        listed = [(n, "") for n in names if n != "completed"]
    schema = _schema_of(response_format)
    props = schema.get("properties", {}) if schema else {}
    if not listed and props:
        listed = [(n, "") for n in props]
    notes = _notes(system)
    fields = []
    for name, label in listed:
        field_schema, options = _from_note(notes.get(name, ""))
        if name in props:
            field_schema = {**props[name], "$defs": schema.get("$defs", {})} if schema else None
        fields.append(OutputField(name, label, field_schema, options))
    return tuple(fields)


def _instructions(system: str) -> str:
    at = system.lower().find(OBJECTIVE)
    if at < 0:
        return system
    return textwrap.dedent(system[at + len(OBJECTIVE) :].strip("\n")).strip()


def _outputs_of(reply: str) -> dict[str, Any]:
    stripped = reply.strip()
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
    return sections(reply)


def parse_prompt(
    messages: Sequence[Mapping[str, str]], response_format: Mapping[str, Any] | None = None
) -> ParsedPrompt:
    """Everything the skill model needs from one request."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages if m["role"] != "system"]
    last_user = next((m["content"] for m in reversed(turns) if m["role"] == "user"), "")
    outputs = _output_fields(system, last_user, response_format)
    lowered = (system + "\n" + last_user).lower()
    json_mode = bool(
        response_format and response_format.get("type") in ("json_object", "json_schema")
    )
    json_mode = json_mode or any(cue in lowered for cue in JSON_OUTPUT_CUES)
    if not outputs:
        return ParsedPrompt(False, instructions=system, json_mode=json_mode, last_user=last_user)
    input_names = {name for name, _ in _field_list(system, "Your input fields are:")}

    def input_values(text: str) -> dict[str, str]:
        found = sections(REMINDER.split(text, maxsplit=1)[0])
        return {k: v for k, v in found.items() if not input_names or k in input_names}

    demos = []
    for user, reply in itertools.pairwise(turns):
        if user["role"] == "user" and reply["role"] == "assistant":
            demos.append(Demo(input_values(user["content"]), _outputs_of(reply["content"])))
    return ParsedPrompt(
        structured=True,
        output_fields=outputs,
        instructions=_instructions(system),
        inputs=input_values(last_user),
        demos=tuple(demos),
        json_mode=json_mode,
        last_user=last_user,
    )
