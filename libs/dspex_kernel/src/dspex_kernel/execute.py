"""``execute``: run a program on one set of inputs — a fold of its stages over a context
of values, collecting outputs, a per-stage trace, usage and latency. No hidden state."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .config import PlannedStage, plan
from .errors import InputError
from .lm import Usage
from .modules import StageCall, TraceEntry
from .program import ProgramSpec
from .runtime import Runtime


@dataclass(frozen=True, slots=True)
class Result:
    """What one execution produced. ``outputs`` are the last stage's outputs; ``values``
    holds every field the run saw (inputs and every stage's outputs)."""

    outputs: dict[str, Any]
    values: dict[str, Any]
    trace: tuple[TraceEntry, ...]
    usage: Usage
    latency_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "outputs": self.outputs,
            "trace": [t.to_dict() for t in self.trace],
            "usage": self.usage.to_dict(),
            "latency_s": round(self.latency_s, 6),
        }


async def execute(
    spec: ProgramSpec,
    inputs: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    *,
    runtime: Runtime,
) -> Result:
    """Run ``spec`` on ``inputs``; ``overrides`` (variable names or configuration paths)
    are validated against the variable space first."""
    return await run_plan(spec, plan(spec, overrides), inputs, runtime)


async def run_plan(
    spec: ProgramSpec,
    stages: Sequence[PlannedStage],
    inputs: Mapping[str, Any],
    runtime: Runtime,
) -> Result:
    missing = [f for f in spec.input_fields if f not in inputs]
    if missing:
        raise InputError(
            f"program {spec.name!r} needs input fields {list(spec.input_fields)}; missing {missing}"
        )
    started = time.perf_counter()
    values: dict[str, Any] = dict(inputs)
    trace: list[TraceEntry] = []
    usage = Usage()
    outputs: dict[str, Any] = {}
    for stage in stages:
        call = StageCall(
            stage=stage.name,
            module=stage.module,
            signature=stage.signature,
            inputs={name: values[name] for name in stage.signature.input_names},
            config=stage.config,
            params=stage.params,
            runtime=runtime,
        )
        result = await stage.run(call)
        outputs = result.outputs
        values.update(outputs)
        trace.extend(result.trace)
        usage = usage + result.usage
    return Result(outputs, values, tuple(trace), usage, time.perf_counter() - started)
