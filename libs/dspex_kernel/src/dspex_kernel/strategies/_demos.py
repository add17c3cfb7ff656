"""Demonstrations for the bootstrap strategy: which stages take demos, a demo per stage from
a successful trace, labeled demos from raw training examples, and the per-stage limits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import plan
from ..modules.best_of_n import HINT
from ..program import ProgramSpec
from ..signature import Signature
from ..variables import DemoSetVar
from ._base import ExampleOutcome

# Module kinds whose LM calls show the stage's demos (retrieve makes no LM call).
LM_MODULES = frozenset({"predict", "chain_of_thought", "react", "best_of_n", "refine"})
MAX_DEMOS = 64  # StageConfig's own limit
Demo = dict[str, Any]


@dataclass(frozen=True, slots=True)
class DemoStage:
    """A stage that takes demos: its signature fields, how many demos it accepts, and the
    demos the program's configuration gives it now."""

    name: str
    signature: Signature
    limit: int
    current: tuple[Mapping[str, Any], ...]

    @property
    def path(self) -> str:
        return f"{self.name}.demos"


def demo_stages(spec: ProgramSpec) -> list[DemoStage]:
    """The LM stages of the program as configured (a configured module kind counts)."""
    out = []
    for planned in plan(spec):
        if planned.module not in LM_MODULES:
            continue
        limit = MAX_DEMOS
        for var in spec.variables.variables:
            # Only a variable on this exact path governs the stage's demos override.
            if isinstance(var, DemoSetVar) and var.target == f"{planned.name}.demos":
                limit = min(limit, var.max_demos)
        current = tuple(planned.config.get("demos") or ())
        out.append(DemoStage(planned.name, spec.signatures[planned.name], limit, current))
    return out


def traced_demos(outcome: ExampleOutcome, stages: Sequence[DemoStage]) -> dict[str, Demo]:
    """One demo per stage from the example's trace: the stage's last LM call that produced
    all of the stage's outputs (react's extraction, best_of_n's kept attempt), inputs and
    outputs together, reasoning included. Stages missing from the trace get none."""
    out: dict[str, Demo] = {}
    for stage in stages:
        wanted = stage.signature.output_names
        for entry in reversed(outcome.trace):
            outputs = entry.get("outputs") or {}
            if entry.get("stage") == stage.name and all(k in outputs for k in wanted):
                inputs = {k: v for k, v in (entry.get("inputs") or {}).items() if k != HINT.name}
                out[stage.name] = {**inputs, **outputs}
                break
    return out


def labeled_demo(example: Mapping[str, Any], stage: DemoStage) -> Demo | None:
    """The example's values for the stage's signature fields; None unless it has at least
    one input and one output (adapters skip anything less)."""
    sig = stage.signature
    inputs = {k: example[k] for k in sig.input_names if k in example}
    outputs = {k: example[k] for k in sig.output_names if k in example}
    if not inputs or not outputs:
        return None
    return {**inputs, **outputs}
