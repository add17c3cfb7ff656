"""What counts as a breaking change of an event's JSON Schema: a property removed, a
property's type changed (const and enum values included), or a new required property.
Additive changes (new optional properties, new enum values) keep the major version."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Schema = Mapping[str, Any]


class _Doc:
    """One schema document, able to resolve its local ``$ref`` pointers."""

    def __init__(self, root: Schema) -> None:
        self.root = root

    def resolve(self, schema: Schema) -> Schema:
        seen: set[str] = set()
        while "$ref" in schema:
            ref = schema["$ref"]
            if not ref.startswith("#/") or ref in seen:
                raise ValueError(f"cannot resolve $ref {ref!r}")
            seen.add(ref)
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            # Keywords beside a $ref (description, default) do not change the type.
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema

    def branches(self, schema: Schema) -> list[Schema]:
        """The alternatives a value may match, $refs resolved, unions flattened."""
        schema = self.resolve(schema)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return [b for sub in schema[key] for b in self.branches(sub)]
        if "allOf" in schema and len(schema["allOf"]) == 1:
            return self.branches(schema["allOf"][0])
        return [schema]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _types(branch: Schema) -> set[str]:
    if "type" in branch:
        kind = branch["type"]
        return set(kind) if isinstance(kind, list) else {kind}
    if "const" in branch:
        return {_json_type(branch["const"])}
    if "enum" in branch:
        return {_json_type(v) for v in branch["enum"]}
    if "properties" in branch or "additionalProperties" in branch:
        return {"object"}
    if "items" in branch or "prefixItems" in branch:
        return {"array"}
    return {"any"}


def _only(branches: list[Schema], kind: str) -> Schema | None:
    found = [b for b in branches if kind in _types(b)]
    return found[0] if len(found) == 1 else None


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Why ``new`` breaks producers or consumers of ``old``: one line per break, empty when
    ``new`` only adds to ``old``."""
    problems: list[str] = []
    _compare(_Doc(old), old, _Doc(new), new, "$", problems, 0)
    return problems


# A recursive model's schema refers to itself: compare it to a bounded depth.
_MAX_DEPTH = 32


def _compare(
    od: _Doc, old: Schema, nd: _Doc, new: Schema, path: str, out: list[str], depth: int
) -> None:
    if depth > _MAX_DEPTH:
        return
    ob, nb = od.branches(old), nd.branches(new)
    old_types = set().union(*(_types(b) for b in ob))
    new_types = set().union(*(_types(b) for b in nb))
    if old_types != new_types:
        out.append(f"{path}: type changed from {sorted(old_types)} to {sorted(new_types)}")
        return
    _compare_values(ob, nb, path, out)
    old_obj, new_obj = _only(ob, "object"), _only(nb, "object")
    if old_obj is not None and new_obj is not None:
        _compare_objects(od, old_obj, nd, new_obj, path, out, depth + 1)
    old_arr, new_arr = _only(ob, "array"), _only(nb, "array")
    old_items = old_arr.get("items") if old_arr is not None else None
    new_items = new_arr.get("items") if new_arr is not None else None
    if isinstance(old_items, Mapping) and isinstance(new_items, Mapping):
        _compare(od, old_items, nd, new_items, f"{path}[]", out, depth + 1)


def _compare_values(ob: list[Schema], nb: list[Schema], path: str, out: list[str]) -> None:
    # Fixed values (const, enum) are part of the type: losing one breaks the producers that
    # send it, and restricting a free value breaks them all. Lifting a restriction or adding
    # a value is additive (consumers upgrade first).
    old_fixed = [b for b in ob if "const" in b or "enum" in b]
    new_fixed = [b for b in nb if "const" in b or "enum" in b]
    if not new_fixed:
        return
    if not old_fixed:
        out.append(f"{path}: now restricted to fixed values")
        return

    def values(branches: list[Schema]) -> set[str]:
        return {repr(v) for b in branches for v in ([b["const"]] if "const" in b else b["enum"])}

    lost = values(old_fixed) - values(new_fixed)
    if lost:
        out.append(f"{path}: values removed: {', '.join(sorted(lost))}")


def _compare_objects(
    od: _Doc, old: Schema, nd: _Doc, new: Schema, path: str, out: list[str], depth: int
) -> None:
    old_props: Mapping[str, Schema] = old.get("properties", {})
    new_props: Mapping[str, Schema] = new.get("properties", {})
    for name, old_prop in old_props.items():
        if name not in new_props:
            out.append(f"{path}.{name}: property removed")
        else:
            _compare(od, old_prop, nd, new_props[name], f"{path}.{name}", out, depth)
    for name in sorted(set(new.get("required", ())) - set(old.get("required", ()))):
        out.append(f"{path}.{name}: new required property")
    old_extra, new_extra = old.get("additionalProperties"), new.get("additionalProperties")
    if isinstance(old_extra, Mapping) and isinstance(new_extra, Mapping):
        _compare(od, old_extra, nd, new_extra, f"{path}.*", out, depth)
