"""SIMBA's moves on a candidate program (configuration overrides): dropping demos at
random, ``append_a_demo`` and ``append_a_rule``, plus the small statistics SIMBA ranks
buckets and samples temperatures with."""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from ..config import plan
from ..program import ProgramSpec
from ..variables import TextVar
from ._base import ExampleOutcome, StrategyContext
from ._common import temperature_range
from ._demos import DemoStage, traced_demos
from ._prompting import ask, describe_program, prompt_model, signature

Overrides = dict[str, Any]
Move = Callable[[Overrides, Sequence[ExampleOutcome], float, float], Awaitable[Overrides]]
MAX_INSTRUCTIONS = 20_000  # StageConfig's own limit

RULE_INSTRUCTIONS = (
    "A program built from language-model stages ran twice on the same input: one run "
    "scored better than the other. Compare the two runs stage by stage and write, for each "
    "stage, one rule that would make the stage behave like the better run on inputs of this "
    "kind. A stage will only see its rule, not these runs: make the rule concrete enough to "
    "change its behaviour and general enough to hold for other inputs. No boilerplate; a "
    "rule for one stage is about that stage's own sub-task."
)


class Moves:
    """The moves for one run: which stages take demos and rules, and how many of each."""

    def __init__(
        self,
        ctx: StrategyContext,
        stages: Sequence[DemoStage],
        max_demos: int,
        demo_maxlen: int,
    ) -> None:
        self.ctx, self.stages = ctx, list(stages)
        self.max_demos, self.demo_maxlen = max_demos, demo_maxlen
        self.available: list[Move] = [self.append_a_rule]
        if max_demos > 0:
            self.available.insert(0, self.append_a_demo)
        self.rules_written = self.demos_appended = 0
        self._fields = {st.name: _field_name(st.name) for st in stages}
        self._rule_limits = _instruction_limits(ctx.spec)
        self._model: str | None = None

    def drop_demos(self, overrides: Mapping[str, Any]) -> Overrides:
        """A copy of ``overrides`` with a Poisson-distributed number of demo positions
        removed from every stage (at least one once a stage holds ``max_demos``)."""
        current = _effective(self.ctx.spec, overrides)
        most = max((len(demos) for demos, _ in current.values()), default=0)
        cap = self.max_demos if self.max_demos > 0 else 3
        count = min(max(_poisson(self.ctx.rng.random, most / cap), int(most >= cap)), most)
        dropped = {self.ctx.rng.randrange(most) for _ in range(count)}
        out = dict(overrides)
        if dropped:
            for stage in self.stages:
                demos = current[stage.name][0]
                out[stage.path] = [d for i, d in enumerate(demos) if i not in dropped]
        return out

    async def append_a_demo(
        self, overrides: Overrides, bucket: Sequence[ExampleOutcome], p10: float, p90: float
    ) -> Overrides:
        """The best trajectory's last call of each stage becomes a demo of that stage,
        unless that trajectory scored no better than the batch's 10th percentile."""
        good = bucket[0]
        if good.score <= p10:
            return overrides
        demos = traced_demos(good, self.stages)
        if not demos:
            return overrides
        current = _effective(self.ctx.spec, overrides)
        out = dict(overrides)
        for stage in self.stages:
            if stage.name in demos:
                demo = {k: self._cut(v) for k, v in demos[stage.name].items()}
                kept = [*current[stage.name][0], demo]
                out[stage.path] = kept[max(0, len(kept) - stage.limit) :]
        self.demos_appended += 1
        return out

    async def append_a_rule(
        self, overrides: Overrides, bucket: Sequence[ExampleOutcome], p10: float, p90: float
    ) -> Overrides:
        """A prompt model contrasts the best and the worst trajectory of the bucket and
        writes a rule per stage, appended to the stage's instructions. Skipped when the
        best is no better than the batch's 10th percentile or the worst no worse than its
        90th; when both scored the same, the one on the wrong side is left out."""
        good, bad = bucket[0], bucket[-1]
        if good.score <= p10 or bad.score >= p90:
            return overrides
        better: ExampleOutcome | None = good
        worse: ExampleOutcome | None = bad
        if good.score <= bad.score:
            if good.score > p90:
                worse = None
            else:
                better = None
        example = self.ctx.trainset[good.index]
        inputs = {
            "program": describe_program(self.ctx.spec),
            "program_inputs": _fields_of(example, self.stages, outputs=False),
            "expected_outputs": _fields_of(example, self.stages, outputs=True),
            "better_trajectory": _trajectory(better),
            "better_outputs": dict(better.outputs) if better else "not available",
            "better_score": better.score if better else "not available",
            "worse_trajectory": _trajectory(worse),
            "worse_outputs": dict(worse.outputs) if worse else "not available",
            "worse_score": worse.score if worse else "not available",
        }
        outputs = [("discussion", "What the better run did differently, stage by stage.")]
        outputs += [
            (name, f"The rule for stage {stage!r}: if it receives ..., then it should ...")
            for stage, name in self._fields.items()
        ]
        sig = signature(RULE_INSTRUCTIONS, [(k, "") for k in inputs], outputs)
        if self._model is None:
            self._model = prompt_model(self.ctx)
        reply = await ask(self.ctx, sig, inputs, model=self._model)
        if reply is None:
            return overrides
        current = _effective(self.ctx.spec, overrides)
        out = dict(overrides)
        for stage in self.stages:
            rule = str(reply.get(self._fields[stage.name]) or "").strip()
            text = f"{current[stage.name][1]}\n\n{rule}"
            if rule and len(text) <= self._rule_limits.get(stage.name, MAX_INSTRUCTIONS):
                out[f"{stage.name}.instructions"] = text
        if out != overrides:
            self.rules_written += 1
        return out

    def _cut(self, value: Any) -> Any:
        if isinstance(value, str) and len(value) > self.demo_maxlen:
            return value[: self.demo_maxlen] + "..."
        return value


def bucket_order(bucket: Sequence[ExampleOutcome]) -> tuple[float, float, float]:
    """How much an example's trajectories disagree: (max - min, max, max - mean)."""
    scores = [o.score for o in bucket]
    top, low = max(scores), min(scores)
    return (top - low, top, top - sum(scores) / len(scores))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile with linear interpolation between closest ranks."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def sampling_temperatures(spec: ProgramSpec, n: int) -> list[dict[str, Any]]:
    """Overrides for ``n`` trajectory samplers: the program as configured, then
    temperatures spread over [0.5, 1.0], clipped to the program's temperature variable;
    repeats are left out (a repeat would only hit the cache)."""
    low, high = temperature_range(spec)
    out: list[dict[str, Any]] = [{}]
    seen: set[float] = set()
    for i in range(1, n):
        t = 0.5 + 0.5 * (i - 1) / max(1, n - 2)
        t = round(min(max(t, low), high), 4)
        if t not in seen:
            seen.add(t)
            out.append({"*.temperature": t})
    return out


def _poisson(draw: Callable[[], float], lam: float) -> int:
    """A Poisson sample from uniform draws (Knuth's method; ``lam`` is small here)."""
    limit, k, product = math.exp(-lam), 0, draw()
    while product > limit:
        k += 1
        product *= draw()
    return k


def _effective(
    spec: ProgramSpec, overrides: Mapping[str, Any]
) -> dict[str, tuple[list[dict[str, Any]], str]]:
    """Each stage's demos and instructions under ``overrides``."""
    return {
        p.name: (list(p.config.get("demos") or []), p.signature.instructions)
        for p in plan(spec, overrides)
    }


def _instruction_limits(spec: ProgramSpec) -> dict[str, int]:
    limits: dict[str, int] = {}
    for var in spec.variables.variables:
        stage, _, key = var.target.partition(".")
        if isinstance(var, TextVar) and key == "instructions":
            names = [s.name for s in spec.stages] if stage == "*" else [stage]
            for name in names:
                limits[name] = min(limits.get(name, MAX_INSTRUCTIONS), var.max_length)
    return limits


def _field_name(stage: str) -> str:
    return re.sub(r"\W", "_", stage) + "_rule"


def _fields_of(
    example: Mapping[str, Any], stages: Sequence[DemoStage], *, outputs: bool
) -> dict[str, Any]:
    names = [
        n
        for st in stages
        for n in (st.signature.output_names if outputs else st.signature.input_names)
    ]
    return {k: example[k] for k in dict.fromkeys(names) if k in example}


def _trajectory(outcome: ExampleOutcome | None) -> Any:
    if outcome is None:
        return "not available"
    return [
        {"stage": e.get("stage"), "inputs": e.get("inputs"), "outputs": e.get("outputs")}
        for e in outcome.trace
    ]
