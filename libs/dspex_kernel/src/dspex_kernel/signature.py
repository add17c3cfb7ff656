"""Signatures: the typed input and output fields of one LM call, plus its instructions.

Two forms, as in DSPy: a string (``"question, context: list[str] -> answer: int"``) and a
class whose annotated attributes are ``InputField()`` / ``OutputField()`` and whose
docstring is the instructions. Both produce the same frozen :class:`Signature`.
"""

from __future__ import annotations

import ast
import inspect
import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, Optional, Union

import pydantic

from .errors import SignatureError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = frozenset({"completed"})

# Names a string signature may use in a type expression.
_SAFE_TYPES: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
    "tuple": tuple,
    "Any": Any,
    "Literal": Literal,
    "Optional": Optional,
    "Union": Union,
    "List": list,
    "Dict": dict,
    "Tuple": tuple,
}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a signature. ``annotation`` is a Python type (``str``, ``list[str]``,
    ``Literal["a", "b"]``, a pydantic model, ...)."""

    name: str
    annotation: Any = str
    description: str = ""
    prefix: str = ""

    @property
    def default_prefix(self) -> str:
        """DSPy's prefix inferred from the name: ``some_field`` -> ``Some Field:``."""
        return infer_prefix(self.name)


@dataclass(frozen=True, slots=True)
class Signature:
    """The typed interface of one LM call. Immutable: ``with_*`` methods return copies."""

    inputs: tuple[FieldSpec, ...]
    outputs: tuple[FieldSpec, ...]
    instructions: str = ""

    def __post_init__(self) -> None:
        if not self.outputs:
            raise SignatureError("a signature needs at least one output field")
        seen: set[str] = set()
        for f in (*self.inputs, *self.outputs):
            if not _IDENTIFIER.match(f.name):
                raise SignatureError(f"field name {f.name!r} is not a valid identifier")
            if f.name in _RESERVED:
                raise SignatureError(f"field name {f.name!r} is reserved")
            if f.name in seen:
                raise SignatureError(f"field {f.name!r} appears twice")
            seen.add(f.name)
        if not self.instructions:
            object.__setattr__(self, "instructions", default_instructions(self))

    # -- views ---------------------------------------------------------------------------
    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.outputs)

    @property
    def fields(self) -> tuple[FieldSpec, ...]:
        return (*self.inputs, *self.outputs)

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    # -- derived signatures -----------------------------------------------------------------
    def with_instructions(self, instructions: str | None) -> Signature:
        if not instructions or instructions == self.instructions:
            return self
        return replace(self, instructions=instructions)

    def prepend_output(self, spec: FieldSpec) -> Signature:
        return self._rebuild(self.inputs, (spec, *self.outputs))

    def append_input(self, spec: FieldSpec) -> Signature:
        return self._rebuild((*self.inputs, spec), self.outputs)

    def append_output(self, spec: FieldSpec) -> Signature:
        return self._rebuild(self.inputs, (*self.outputs, spec))

    def _rebuild(self, inputs: tuple[FieldSpec, ...], outputs: tuple[FieldSpec, ...]) -> Signature:
        keep = self.instructions if self.instructions != default_instructions(self) else ""
        return Signature(inputs, outputs, keep)

    # -- serialisation ---------------------------------------------------------------------
    def to_string(self) -> str:
        """The string form; types other than ``str`` are written out."""

        def one(f: FieldSpec) -> str:
            return f.name if f.annotation is str else f"{f.name}: {type_label(f.annotation)}"

        ins = ", ".join(one(f) for f in self.inputs)
        outs = ", ".join(one(f) for f in self.outputs)
        return f"{ins} -> {outs}"

    def __str__(self) -> str:
        return self.to_string()


def default_instructions(sig: Signature) -> str:
    """DSPy's default instructions for a signature without a docstring."""
    ins = ", ".join(f"`{f.name}`" for f in sig.inputs)
    outs = ", ".join(f"`{f.name}`" for f in sig.outputs)
    return f"Given the fields {ins}, produce the fields {outs}."


def infer_prefix(name: str) -> str:
    """``question`` -> ``Question:``, ``snake_case`` -> ``Snake Case:`` (DSPy's rule)."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).split("_")
    return " ".join(w.capitalize() if not w.isupper() else w for w in words if w) + ":"


# -- the string form -----------------------------------------------------------------------
def parse_signature(
    text: str,
    instructions: str | None = None,
    *,
    types: Mapping[str, Any] | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> Signature:
    """Parse ``"a, b: list[str] -> c: int"``. ``types`` names extra types (pydantic
    models) the string may use; ``descriptions`` gives field descriptions by name."""
    if not isinstance(text, str):
        raise SignatureError(f"a signature string was expected, got {type(text).__name__}")
    parts = text.split("->")
    if len(parts) != 2:
        raise SignatureError(
            f"signature {text!r} must have exactly one '->' between inputs and outputs"
        )
    names = dict(_SAFE_TYPES)
    names.update(types or {})
    descs = descriptions or {}
    inputs = tuple(_parse_fields(parts[0], names, descs, text))
    outputs = tuple(_parse_fields(parts[1], names, descs, text))
    if not outputs:
        raise SignatureError(f"signature {text!r} has no output fields")
    return Signature(inputs, outputs, instructions or "")


def _parse_fields(
    side: str, names: Mapping[str, Any], descs: Mapping[str, str], whole: str
) -> Iterable[FieldSpec]:
    for chunk in _split_top_level(side):
        chunk = chunk.strip()
        if not chunk:
            continue
        name, _, type_text = chunk.partition(":")
        name = name.strip()
        if not _IDENTIFIER.match(name):
            raise SignatureError(f"{name!r} in signature {whole!r} is not a valid field name")
        annotation = parse_type(type_text.strip(), names) if type_text.strip() else str
        yield FieldSpec(name, annotation, descs.get(name, ""))


def _split_top_level(text: str) -> list[str]:
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    if depth != 0:
        raise SignatureError(f"unbalanced brackets in {text.strip()!r}")
    return out


def parse_type(text: str, names: Mapping[str, Any] | None = None) -> Any:
    """Evaluate a type expression using only allowed names, never ``eval``."""
    scope = names if names is not None else _SAFE_TYPES
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError as e:
        raise SignatureError(f"type {text!r} is not a valid type expression") from e
    return _eval_type(node, scope, text)


def _eval_type(node: ast.expr, scope: Mapping[str, Any], text: str) -> Any:
    if isinstance(node, ast.Name):
        if node.id not in scope:
            raise SignatureError(f"unknown type {node.id!r} in {text!r}")
        return scope[node.id]
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, str)):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _eval_type(node.left, scope, text), _eval_type(node.right, scope, text)
        return Union[left, right]  # noqa: UP007 - built at run time from parsed parts
    if isinstance(node, ast.Subscript):
        base = _eval_type(node.value, scope, text)
        elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base is Literal:
            values = []
            for e in elts:
                if not isinstance(e, ast.Constant):
                    raise SignatureError(f"Literal takes constants only, in {text!r}")
                values.append(e.value)
            return Literal.__getitem__(tuple(values))
        args = tuple(_eval_type(e, scope, text) for e in elts)
        try:
            return base[args if len(args) > 1 else args[0]]
        except TypeError as e:
            raise SignatureError(f"invalid type {text!r}: {e}") from e
    raise SignatureError(f"unsupported type expression {text!r}")


def type_label(annotation: Any) -> str:
    """A readable type name: ``list[str]``, ``Literal['a', 'b']``, ``Person``."""
    if annotation is Any:
        return "Any"
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "Literal[" + ", ".join(repr(a) for a in typing.get_args(annotation)) + "]"
    if origin is Union:
        args = typing.get_args(annotation)
        if len(args) == 2 and type(None) in args:
            inner = args[0] if args[1] is type(None) else args[1]
            return f"Optional[{type_label(inner)}]"
        return "Union[" + ", ".join(type_label(a) for a in args) + "]"
    if origin is not None:
        args = typing.get_args(annotation)
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_label(a) for a in args)}]" if args else name
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


# -- the class form --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _FieldMarker:
    is_input: bool
    desc: str = ""
    prefix: str = ""


def InputField(desc: str = "", *, prefix: str = "") -> Any:
    """Marks an input attribute of a class-form signature."""
    return _FieldMarker(True, desc, prefix)


def OutputField(desc: str = "", *, prefix: str = "") -> Any:
    """Marks an output attribute of a class-form signature."""
    return _FieldMarker(False, desc, prefix)


def signature_from_class(cls: type) -> Signature:
    """Build a signature from a class with ``InputField``/``OutputField`` attributes."""
    try:
        hints = typing.get_type_hints(cls, include_extras=False)
    except Exception as e:
        raise SignatureError(f"cannot resolve the annotations of {cls.__name__}: {e}") from e
    inputs: list[FieldSpec] = []
    outputs: list[FieldSpec] = []
    for name in inspect.get_annotations(cls):
        marker = cls.__dict__.get(name)
        if not isinstance(marker, _FieldMarker):
            raise SignatureError(
                f"{cls.__name__}.{name} must be declared with InputField() or OutputField()"
            )
        spec = FieldSpec(name, hints.get(name, str), marker.desc, marker.prefix)
        (inputs if marker.is_input else outputs).append(spec)
    doc = (cls.__doc__ or "").strip()
    return Signature(tuple(inputs), tuple(outputs), _dedent(doc))


def _dedent(doc: str) -> str:
    return inspect.cleandoc(doc) if doc else ""


def as_signature(value: Signature | str | type, instructions: str | None = None) -> Signature:
    """Accept any of the signature forms and return a :class:`Signature`."""
    if isinstance(value, Signature):
        sig = value
    elif isinstance(value, str):
        sig = parse_signature(value)
    elif isinstance(value, type):
        sig = signature_from_class(value)
    else:
        raise SignatureError(f"not a signature: {value!r}")
    return sig.with_instructions(instructions)


def is_pydantic_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel)
