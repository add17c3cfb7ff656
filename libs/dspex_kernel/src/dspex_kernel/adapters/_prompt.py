"""What DSPy's chat and JSON formats share: the field list, the objective, user turns, the
order of demos, reading outputs into typed values, and a per-signature cache for everything
that does not depend on the call's values."""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pydantic

from ..errors import AdapterParseError
from ..lm import Message
from ..signature import FieldSpec, Signature
from ._values import (
    Reader,
    allows_none,
    annotation_name,
    field_template,
    reader_for,
    render_value,
)

STRUCTURE_INTRO = (
    "All interactions will be structured in the following way, with the appropriate values "
    "filled in."
)
INCOMPLETE_DEMO_PREFIX = (
    "This is an example of the task, though some input or output fields are not supplied."
)
NOT_SUPPLIED = "Not supplied for this particular example. "
# Complete demos never miss a field, so this text is only a safety net.
NOT_SUPPLIED_IN_HISTORY = "Not supplied for this conversation history message. "

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Slot:
    """One field as the adapters need it: its section header and how to read it back."""

    name: str
    annotation: Any
    header: str
    template: str
    read: Reader
    optional: bool


@dataclass(frozen=True, slots=True)
class Layout:
    """The value-independent parts of a prompt for one signature."""

    inputs: tuple[Slot, ...]
    outputs: tuple[Slot, ...]
    names: tuple[str, ...]
    field_list: str
    input_structure: str
    objective: str


def layout(signature: Signature) -> Layout:
    inputs = tuple(_slot(f, is_output=False) for f in signature.inputs)
    outputs = tuple(_slot(f, is_output=True) for f in signature.outputs)
    field_list = (
        f"Your input fields are:\n{_describe(signature.inputs)}\n"
        f"Your output fields are:\n{_describe(signature.outputs)}"
    )
    return Layout(
        inputs=inputs,
        outputs=outputs,
        names=signature.input_names + signature.output_names,
        field_list=field_list,
        input_structure=sections((s.name, s.template) for s in inputs),
        objective=objective(signature.instructions),
    )


def _slot(spec: FieldSpec, *, is_output: bool) -> Slot:
    return Slot(
        name=spec.name,
        annotation=spec.annotation,
        header=f"[[ ## {spec.name} ## ]]\n",
        template=field_template(spec.name, spec.annotation, is_output=is_output),
        read=reader_for(spec.annotation) if is_output else _inputs_are_not_read,
        optional=is_output and allows_none(spec.annotation),
    )


def _inputs_are_not_read(value: Any) -> Any:
    return value


def _describe(fields: tuple[FieldSpec, ...]) -> str:
    lines = (
        f"{i}. `{f.name}` ({annotation_name(f.annotation)}): {f.description}"
        for i, f in enumerate(fields, 1)
    )
    return "\n".join(lines).strip()


def objective(instructions: str) -> str:
    """The closing line of the system message, instructions indented by eight spaces."""
    text = textwrap.dedent(inspect.cleandoc(instructions))
    indented = "".join("\n        " + line for line in text.splitlines())
    return f"In adhering to this structure, your objective is: {indented}"


def sections(pairs: Iterable[tuple[str, str]]) -> str:
    """``[[ ## name ## ]]`` blocks for ``(name, text)`` pairs, blank-line separated."""
    return "\n\n".join(f"[[ ## {name} ## ]]\n{text}" for name, text in pairs).strip()


def user_content(
    slots: tuple[Slot, ...],
    values: Mapping[str, Any],
    *,
    prefix: str = "",
    requirements: str = "",
) -> str:
    """A user turn: the present input fields in signature order, then the reminder."""
    chunks = [prefix]
    for slot in slots:
        if slot.name in values:
            chunks.append(slot.header + render_value(slot.annotation, values[slot.name]))
    if requirements:
        chunks.append(requirements)
    return "\n\n".join(chunks).strip()


def ordered_demos(
    lay: Layout, demos: Sequence[Mapping[str, Any]]
) -> list[tuple[Mapping[str, Any], bool]]:
    """Demos as DSPy shows them: incomplete ones (some field missing or None, but at least
    one input and one output given) first, then complete ones; others are dropped. Each
    comes with a flag saying whether it is complete."""
    complete: list[tuple[Mapping[str, Any], bool]] = []
    incomplete: list[tuple[Mapping[str, Any], bool]] = []
    for demo in demos:
        if all(demo.get(name) is not None for name in lay.names):
            complete.append((demo, True))
        elif any(s.name in demo for s in lay.inputs) and any(s.name in demo for s in lay.outputs):
            incomplete.append((demo, False))
    return incomplete + complete


def demo_turns(
    lay: Layout,
    demos: Sequence[Mapping[str, Any]],
    reply: Callable[[tuple[Slot, ...], Mapping[str, Any], str], str],
) -> list[Message]:
    """User/assistant message pairs for the demos; ``reply(outputs, demo, missing_text)``
    renders an assistant turn in the adapter's format."""
    messages: list[Message] = []
    for demo, complete in ordered_demos(lay, demos):
        prefix = "" if complete else INCOMPLETE_DEMO_PREFIX
        missing = NOT_SUPPLIED_IN_HISTORY if complete else NOT_SUPPLIED
        messages.append({"role": "user", "content": user_content(lay.inputs, demo, prefix=prefix)})
        messages.append({"role": "assistant", "content": reply(lay.outputs, demo, missing)})
    return messages


def describe_error(error: Exception) -> str:
    """A one-line reason, short enough for a failure event."""
    if isinstance(error, pydantic.ValidationError):
        return "; ".join(str(e["msg"]) for e in error.errors()[:3])
    return str(error)


def read_outputs(
    slots: tuple[Slot, ...],
    found: Mapping[str, Any],
    completion: str,
    adapter: str,
    found_what: str,
) -> dict[str, Any]:
    """Every output read from ``found`` (name -> raw value); a missing optional output is
    None; a missing or ill-typed one raises ``AdapterParseError``."""
    values: dict[str, Any] = {}
    missing: list[str] = []
    for slot in slots:
        if slot.name not in found:
            if slot.optional:
                values[slot.name] = None
            else:
                missing.append(slot.name)
            continue
        raw = found[slot.name]
        try:
            values[slot.name] = slot.read(raw)
        except (ValueError, TypeError) as e:
            shown = raw if len(str(raw)) <= 200 else str(raw)[:200] + "..."
            raise AdapterParseError(
                f"output field {slot.name!r}: {shown!r} is not a valid "
                f"{annotation_name(slot.annotation)} ({describe_error(e)})",
                completion=completion,
                adapter=adapter,
            ) from e
    if missing:
        raise AdapterParseError(
            f"the reply lacks the output field(s) {', '.join(missing)} "
            f"({found_what} found: {', '.join(str(k) for k in list(found)[:10]) or 'none'})",
            completion=completion,
            adapter=adapter,
        )
    return values


class PerSignature(Generic[T]):
    """Memoises ``build(signature)``. Signatures are frozen and hashable; one whose
    annotations cannot be hashed is simply rebuilt on every call."""

    def __init__(self, build: Callable[[Signature], T], maxsize: int = 2048) -> None:
        self._build = build
        self._maxsize = maxsize
        self._cache: dict[Signature, T] = {}

    def __call__(self, signature: Signature) -> T:
        try:
            return self._cache[signature]
        except KeyError:
            pass
        except TypeError:
            return self._build(signature)
        value = self._build(signature)
        if len(self._cache) >= self._maxsize:
            # Programs use a handful of signatures; a full cache means churn, so start over.
            self._cache.clear()
        self._cache[signature] = value
        return value
