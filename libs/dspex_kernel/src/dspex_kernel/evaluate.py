"""``evaluate``: score a program on a dataset with asyncio concurrency. Each example is
executed and scored independently; a failed example scores 0 and records its error."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import plan
from .errors import DSPExError, InputError, MetricError
from .execute import run_plan
from .lm import Usage
from .metrics import Metric, get_metric
from .modules import TraceEntry
from .program import ProgramSpec
from .runtime import Runtime, gather_limited

Example = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ExampleResult:
    index: int
    outputs: dict[str, Any]
    score: float
    usage: Usage
    latency_s: float
    error: dict[str, object] | None = None
    trace: tuple[TraceEntry, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "outputs": self.outputs,
            "score": self.score,
            "usage": self.usage.to_dict(),
            "latency_s": round(self.latency_s, 6),
            "error": self.error,
        }
        if self.trace:
            out["trace"] = [t.to_dict() for t in self.trace]
        return out


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    score: float
    results: tuple[ExampleResult, ...]
    usage: Usage
    wall_s: float

    @property
    def n(self) -> int:
        return len(self.results)

    @property
    def n_failed(self) -> int:
        return sum(1 for r in self.results if r.error is not None)

    def summary(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 6),
            "n": self.n,
            "n_failed": self.n_failed,
            "lm_calls": self.usage.calls,
            "cached_calls": self.usage.cached_calls,
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "cost_usd": round(self.usage.cost_usd, 8),
            "wall_s": round(self.wall_s, 3),
        }


async def evaluate(
    spec: ProgramSpec,
    dataset: Sequence[Example],
    metric: Metric | str,
    *,
    runtime: Runtime,
    overrides: Mapping[str, Any] | None = None,
    concurrency: int = 16,
    want_traces: bool = False,
) -> EvaluationReport:
    """Run ``spec`` on every example (at most ``concurrency`` at once) and score it."""
    score_fn = get_metric(metric) if isinstance(metric, str) else metric
    stages = plan(spec, overrides)
    inputs_of = spec.input_fields
    started = time.perf_counter()

    async def one(index: int, example: Example) -> ExampleResult:
        t0 = time.perf_counter()
        try:
            result = await run_plan(
                spec, stages, {k: example[k] for k in inputs_of if k in example}, runtime
            )
        except DSPExError as e:
            usage = getattr(e, "usage", Usage())
            return ExampleResult(index, {}, 0.0, usage, time.perf_counter() - t0, e.to_dict())
        score = _checked(score_fn(example, result.outputs))
        return ExampleResult(
            index,
            result.outputs,
            score,
            result.usage,
            time.perf_counter() - t0,
            None,
            result.trace if want_traces else (),
        )

    results = await gather_limited(concurrency, [one(i, ex) for i, ex in enumerate(dataset)])
    usage = sum((r.usage for r in results), Usage())
    mean = sum(r.score for r in results) / len(results) if results else 0.0
    return EvaluationReport(mean, tuple(results), usage, time.perf_counter() - started)


def _checked(value: float | bool) -> float:
    score = float(value)
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise MetricError(f"a metric must return a number in [0, 1], got {value!r}")
    return score


def load_examples(path: str | Path) -> list[dict[str, Any]]:
    """Examples from a JSONL file (one object a line) or a JSON list."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            data = json.loads(text)
            rows = data if isinstance(data, list) else []
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise InputError(f"{path.name}: not valid JSON: {e}") from e
    if not all(isinstance(r, dict) for r in rows) or not rows:
        raise InputError(f"{path.name}: expected a non-empty list of JSON objects")
    return rows
