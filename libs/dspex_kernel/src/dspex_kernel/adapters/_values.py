"""Type-driven value handling shared by the adapters: DSPy's names, notes and JSON schemas
for annotations, rendering values into prompt text, and reading reply text back into typed,
JSON-ready values."""

from __future__ import annotations

import ast
import enum
import json
import types
import typing
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Literal, Union

import pydantic

from ..errors import SignatureError

Reader = Callable[[Any], Any]

_NONE_TYPE = type(None)
_UNION_ORIGINS = (Union, types.UnionType)
# Values whose prompt text is simply ``str(value)``; everything else goes through pydantic.
_SCALARS = (str, int, float, bool, _NONE_TYPE)
_JSON_DECODER = json.JSONDecoder()
# One encoder instead of json.dumps(..., ensure_ascii=False), which builds one per call.
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False)


# -- describing types ----------------------------------------------------------------------
def annotation_name(annotation: Any) -> str:
    """The type name DSPy prints: ``list[str]``, ``Union[int, NoneType]``, ``Literal['a']``."""
    origin = typing.get_origin(annotation)
    if origin is None:
        name = getattr(annotation, "__name__", None)
        return name if isinstance(name, str) else str(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        inner = ", ".join(
            _quote_literal(a) if isinstance(a, str) else annotation_name(a) for a in args
        )
        return f"Literal[{inner}]"
    base = "Union" if origin in _UNION_ORIGINS else annotation_name(origin)
    return f"{base}[{', '.join(annotation_name(a) for a in args)}]"


def _quote_literal(text: str) -> str:
    # DSPy quotes like repr() but never escapes anything except a single quote that has to
    # share the string with a double quote.
    if "'" in text and '"' not in text:
        return f'"{text}"'
    return "'" + text.replace("'", "\\'") + "'"


def output_note(annotation: Any) -> str:
    """What the system message tells the LM about an output's type ("" for ``str``)."""
    if annotation is str:
        return ""
    if annotation is bool:
        return "must be True or False"
    if annotation is int or annotation is float:
        return f"must be a single {annotation.__name__} value"
    if _is_enum(annotation):
        return "must be one of: " + "; ".join(str(m.value) for m in annotation)
    if typing.get_origin(annotation) is Literal:
        options = "; ".join(str(a) for a in typing.get_args(annotation))
        return f"must exactly match (no extra characters) one of: {options}"
    schema = json.dumps(json_schema(annotation), ensure_ascii=False)
    return f"must adhere to the JSON schema: {schema}"


def field_template(name: str, annotation: Any, *, is_output: bool) -> str:
    """The ``{name}`` placeholder of the structure block, with the type note for outputs."""
    note = output_note(annotation) if is_output else ""
    return f"{{{name}}}        # note: the value you produce {note}" if note else f"{{{name}}}"


def python_type_hint(annotation: Any) -> str:
    """The reminder DSPy appends to a non-``str`` output in the final user message."""
    if annotation is str:
        return ""
    return f" (must be formatted as a valid Python {annotation_name(annotation)})"


def json_schema(annotation: Any) -> dict[str, Any]:
    """The annotation's JSON schema with ``type`` first and other keys sorted, as DSPy
    shows it to the LM."""
    try:
        schema = _type_adapter(annotation).json_schema()
    except (pydantic.PydanticUserError, pydantic.PydanticSchemaGenerationError) as e:
        raise SignatureError(
            f"type {annotation_name(annotation)} cannot be described as a JSON schema: {e}"
        ) from e
    ordered = _type_first(schema)
    assert isinstance(ordered, dict)
    return ordered


def _type_first(node: Any) -> Any:
    if isinstance(node, Mapping):
        keys = sorted(node, key=lambda k: (k != "type", k))
        return {k: _type_first(node[k]) for k in keys}
    if isinstance(node, list):
        return [_type_first(item) for item in node]
    return node


def allows_none(annotation: Any) -> bool:
    """Whether ``None`` is a valid value (``Optional[X]``, ``X | None``, ``None``)."""
    if annotation is None or annotation is _NONE_TYPE:
        return True
    if typing.get_origin(annotation) in _UNION_ORIGINS:
        return any(allows_none(a) for a in typing.get_args(annotation))
    return False


def _is_enum(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, enum.Enum)


# -- rendering values into prompts -----------------------------------------------------------
def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (models become dicts); unknown leaves become strings."""
    kind: Any = type(value)
    if kind in _SCALARS:
        return value
    try:
        return _cached_type_adapter(kind).dump_python(value, mode="json", fallback=str)
    except Exception:  # any value must render; its string form is the last resort
        return str(value)


def render_value(annotation: Any, value: Any) -> str:
    """A field value as prompt text: strings verbatim, lists for a ``str`` field as a
    numbered list, dicts/lists/models as JSON, other values as their string form."""
    if type(value) is str:
        return value
    if annotation is str and isinstance(value, list):
        return _numbered(value)
    jsonable = to_jsonable(value)
    if isinstance(jsonable, dict | list):
        return _JSON_ENCODER.encode(jsonable)
    return str(jsonable)


def _numbered(items: list[Any]) -> str:
    if not items:
        return "N/A"
    if len(items) == 1:
        return _blob(items[0])
    return "\n".join(f"[{i}] {_blob(item)}" for i, item in enumerate(items, 1))


def _blob(item: Any) -> str:
    text = item if isinstance(item, str) else str(item)
    if "\n" not in text and "«" not in text and "»" not in text:
        return f"«{text}»"
    return "«««\n    " + text.replace("\n", "\n    ") + "\n»»»"


# -- reading replies -----------------------------------------------------------------------
def reader_for(annotation: Any) -> Reader:
    """A function turning a reply value (text, or JSON data) into a JSON-ready value of the
    annotation's type; it raises ``ValueError`` when the value does not fit."""
    try:
        hash(annotation)
    except TypeError:
        return _build_reader(annotation)
    return _cached_reader(annotation)


@lru_cache(maxsize=1024)
def _cached_reader(annotation: Any) -> Reader:
    return _build_reader(annotation)


def _build_reader(annotation: Any) -> Reader:
    if annotation is str:
        return _read_str
    if _is_enum(annotation):
        return lambda value: _enum_member(annotation, value).value
    adapter = _type_adapter(annotation)
    # Plain scalars come out of validation JSON-ready; anything else is dumped so that
    # models, tuples and sets become dicts and lists.
    dump = annotation not in (int, float, bool)

    def validate(value: Any) -> Any:
        result = adapter.validate_python(value)
        return adapter.dump_python(result, mode="json") if dump else result

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in _UNION_ORIGINS and str in args and _NONE_TYPE in args:
        # Optional text is taken verbatim, as DSPy does, rather than read as JSON.
        return validate

    def read(value: Any) -> Any:
        return validate(loads_lenient(value) if isinstance(value, str) else value)

    if origin is Literal:
        return _literal_reader(args, read)
    return read


def _read_str(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _literal_reader(allowed: tuple[Any, ...], fallback: Reader) -> Reader:
    def read(value: Any) -> Any:
        if value in allowed:
            return value
        if isinstance(value, str):
            # Forgive the usual slips: "Literal[x]", "str[x]" and quotes around the choice.
            text = value.strip()
            if text.startswith(("Literal[", "str[")) and text.endswith("]"):
                text = text[text.find("[") + 1 : -1]
            if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
                text = text[1:-1]
            if text in allowed:
                return text
            value = text
        return fallback(value)

    return read


def _enum_member(cls: type[enum.Enum], value: Any) -> enum.Enum:
    for member in cls:
        if member.value == value:
            return member
    if isinstance(value, str) and value in cls.__members__:
        return cls[value]
    raise ValueError(f"{value!r} is neither a value nor a name of {cls.__name__}")


def loads_lenient(text: str) -> Any:
    """Read text as JSON, else as a Python literal, else the first JSON object or array in
    it (fenced or surrounded by prose); failing all that, the text itself."""
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    try:
        return ast.literal_eval(stripped)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    starts = [i for i in (stripped.find("{"), stripped.find("[")) if i >= 0]
    if starts:
        try:
            return _JSON_DECODER.raw_decode(stripped, min(starts))[0]
        except ValueError:
            pass
    return text


@lru_cache(maxsize=1024)
def _cached_type_adapter(annotation: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(annotation)


def _type_adapter(annotation: Any) -> pydantic.TypeAdapter[Any]:
    try:
        hash(annotation)
    except TypeError:
        return pydantic.TypeAdapter(annotation)
    return _cached_type_adapter(annotation)
