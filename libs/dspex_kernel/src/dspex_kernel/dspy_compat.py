"""Load and save DSPy's saved-program JSON (``program.save("x.json")``): per predictor,
its demos and signature instructions, mapped to and from a spec's stage configuration."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ProgramError
from .modules import with_reasoning
from .program import ProgramSpec
from .signature import Signature

LM_MODULES = ("predict", "chain_of_thought", "react", "best_of_n", "refine")


def _predictor_keys(stage: str, module: str) -> list[str]:
    """The names DSPy gives the predictor(s) of a module assigned to attribute ``stage``."""
    if module == "predict":
        return [stage, f"{stage}.predict"]
    if module == "react":
        return [f"{stage}.react"]
    return [f"{stage}.predict", f"{stage}.module.predict", stage]


def _stage_signature(spec: ProgramSpec, stage: str, module: str) -> Signature:
    sig = spec.signatures[stage]
    return with_reasoning(sig) if module != "predict" else sig


def load_dspy_state(spec: ProgramSpec, state: Mapping[str, Any]) -> ProgramSpec:
    """A copy of ``spec`` whose stages take the instructions and demos of the matching
    predictors in a DSPy saved state. Every predictor must map to a stage."""
    lm_stages = [s for s in spec.stages if s.module in LM_MODULES]
    overrides: dict[str, Any] = {}
    if _is_one_predictor(state):
        # A bare ``dspy.Predict`` saves its own state, unnamed, at the top level.
        if len(lm_stages) != 1:
            raise ProgramError(
                f"the DSPy state is one unnamed predictor; {spec.name!r} has "
                f"{len(lm_stages)} LM stages, so it cannot say which one it belongs to"
            )
        stage = lm_stages[0]
        _read_predictor(spec, stage.name, stage.module, state, overrides)
        return spec.with_configuration(overrides)
    predictors = {k: v for k, v in state.items() if k != "metadata" and isinstance(v, dict)}
    used: set[str] = set()
    for stage in lm_stages:
        key = next((k for k in _predictor_keys(stage.name, stage.module) if k in predictors), None)
        if key is None and len(lm_stages) == 1 and len(predictors) == 1:
            key = next(iter(predictors))
        if key is None:
            continue
        used.add(key)
        _read_predictor(spec, stage.name, stage.module, predictors[key], overrides)
    leftover = sorted(set(predictors) - used - _extract_keys(spec))
    if leftover:
        raise ProgramError(
            f"the DSPy state has predictors {leftover} that match no stage of "
            f"{spec.name!r} (stages: {[s.name for s in spec.stages]})"
        )
    return spec.with_configuration(overrides)


def _is_one_predictor(state: Mapping[str, Any]) -> bool:
    return isinstance(state.get("signature"), dict) and isinstance(state.get("demos"), list)


def _extract_keys(spec: ProgramSpec) -> set[str]:
    return {f"{s.name}.extract.predict" for s in spec.stages if s.module == "react"}


def _read_predictor(
    spec: ProgramSpec, stage: str, module: str, data: Mapping[str, Any], out: dict[str, Any]
) -> None:
    fields = set(_stage_signature(spec, stage, module).input_names) | set(
        _stage_signature(spec, stage, module).output_names
    )
    demos = data.get("demos", [])
    if not isinstance(demos, list):
        raise ProgramError(f"predictor for stage {stage!r}: demos must be a list")
    demos = [{k: v for k, v in d.items() if k in fields} for d in demos if isinstance(d, dict)]
    current = spec.configuration.stages.get(stage)
    if demos or (current is not None and current.demos):
        out[f"{stage}.demos"] = demos
    instructions = (data.get("signature") or {}).get("instructions")
    # DSPy saves the default instructions too; writing them back would change nothing.
    if (
        isinstance(instructions, str)
        and instructions
        and (instructions != spec.signatures[stage].instructions)
    ):
        out[f"{stage}.instructions"] = instructions


def to_dspy_state(spec: ProgramSpec) -> dict[str, Any]:
    """The DSPy saved-state dict for ``spec``'s current configuration."""
    from .config import plan

    state: dict[str, Any] = {}
    for planned in plan(spec):
        if planned.module not in LM_MODULES:
            continue
        sig = _stage_signature(spec, planned.name, planned.module)
        key = _predictor_keys(planned.name, planned.module)[0]
        demos = list(planned.config.get("demos") or [])
        state[key] = _predictor(sig, planned.signature.instructions, demos)
        if planned.module == "react":
            # DSPy's ReAct also holds an extraction predictor; it has no demos of ours.
            state[f"{planned.name}.extract.predict"] = _predictor(
                with_reasoning(sig), planned.signature.instructions, []
            )
    state["metadata"] = {
        "dependency_versions": {
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "dspy": "3.4.1",
            "cloudpickle": "3.1",
        }
    }
    return state


def _predictor(sig: Signature, instructions: str, demos: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "traces": [],
        "train": [],
        "demos": demos,
        "signature": {
            "instructions": instructions,
            "fields": [
                {
                    "prefix": f.prefix or f.default_prefix,
                    "description": f.description or f"${{{f.name}}}",
                }
                for f in sig.fields
            ],
        },
        "lm": None,
    }


def load_dspy_file(spec: ProgramSpec, path: str | Path) -> ProgramSpec:
    try:
        state = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ProgramError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(state, dict):
        raise ProgramError(f"{path}: a DSPy saved program is a JSON object")
    return load_dspy_state(spec, state)


def save_dspy_file(spec: ProgramSpec, path: str | Path) -> None:
    Path(path).write_text(
        json.dumps(to_dspy_state(spec), indent=2, ensure_ascii=False), encoding="utf-8"
    )
