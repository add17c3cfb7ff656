"""Overrides and effective configuration: turns a spec plus overrides (variable names or
``<stage>.<key>`` paths) into one validated settings dict per stage — the plan that
``execute`` folds over."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from .errors import ConfigurationError
from .modules import ModuleFn, get_module
from .program import STAGE_KEYS, ProgramSpec, StageConfig
from .signature import Signature


@dataclass(frozen=True, slots=True)
class PlannedStage:
    name: str
    module: str
    run: ModuleFn
    signature: Signature
    config: Mapping[str, Any]
    params: Mapping[str, Any]


def resolve_overrides(spec: ProgramSpec, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Map variable names to their paths, and check every value against the variable
    that governs its path. Raises ``ConfigurationError`` naming each problem."""
    space = spec.variables
    names = {v.name for v in space.variables}
    assignment = {k: v for k, v in overrides.items() if k in names}
    problems: list[str] = []
    try:
        space.validate_assignment(assignment)
    except ConfigurationError as e:
        problems.append(e.message.removeprefix("invalid configuration: "))
    by_path = {v.target: v for v in space.variables}
    stage_names = {s.name for s in spec.stages}
    resolved: dict[str, Any] = {}
    for key, value in overrides.items():
        path = space.get(key).target if key in names else key
        stage, _, field = path.partition(".")
        if key not in names:
            if not field or field not in STAGE_KEYS or (stage != "*" and stage not in stage_names):
                problems.append(
                    f"{key!r} is neither a variable of this program nor a path "
                    f"'<stage>.<key>' / '*.<key>' with a stage in {sorted(stage_names)} and a "
                    f"key in {list(STAGE_KEYS)}"
                )
                continue
            governing = by_path.get(path)
            if governing is not None and (problem := governing.check(value)):
                problems.append(f"{key!r} {problem} (variable {governing.name!r})")
        resolved[path] = value
    if problems:
        raise ConfigurationError("invalid configuration: " + "; ".join(problems))
    return resolved


def plan(spec: ProgramSpec, overrides: Mapping[str, Any] | None = None) -> list[PlannedStage]:
    """The stages with their effective settings. Without overrides the plan is cached on
    the spec, so executing a registered program costs no re-validation."""
    if not overrides:
        cached: list[PlannedStage] | None = spec.__dict__.get("_base_plan")
        if cached is None:
            cached = _build(spec, {})
            spec.__dict__["_base_plan"] = cached
        return cached
    return _build(spec, resolve_overrides(spec, overrides))


def _build(spec: ProgramSpec, paths: Mapping[str, Any]) -> list[PlannedStage]:
    defaults = spec.configuration.defaults.model_dump(exclude_none=True)
    star = {p[2:]: v for p, v in paths.items() if p.startswith("*.")}
    out: list[PlannedStage] = []
    for stage in spec.stages:
        own = spec.configuration.stages.get(stage.name)
        config = {**defaults, **(own.model_dump(exclude_none=True) if own else {}), **star}
        prefix = stage.name + "."
        config.update({p[len(prefix) :]: v for p, v in paths.items() if p.startswith(prefix)})
        if paths:
            config = _validated(stage.name, config)
        kind = config.get("module") or stage.module
        signature = spec.signatures[stage.name].with_instructions(config.get("instructions"))
        out.append(
            PlannedStage(stage.name, kind, get_module(kind), signature, config, stage.params)
        )
    return out


def _validated(stage: str, config: dict[str, Any]) -> dict[str, Any]:
    try:
        return StageConfig.model_validate(config).model_dump(exclude_none=True)
    except ValidationError as e:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise ConfigurationError(f"invalid configuration for stage {stage!r}: {details}") from e


def apply_overrides(
    spec: ProgramSpec, configuration: Mapping[str, Any], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """Write resolved overrides into a configuration dict (``*.k`` into defaults)."""
    out: dict[str, Any] = {
        "defaults": dict(configuration.get("defaults", {})),
        "stages": {k: dict(v) for k, v in configuration.get("stages", {}).items()},
    }
    for path, value in resolve_overrides(spec, overrides).items():
        stage, _, key = path.partition(".")
        target = out["defaults"] if stage == "*" else out["stages"].setdefault(stage, {})
        target[key] = value
    return out
