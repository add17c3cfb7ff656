"""What the run explorer shows, computed from the registry's records as plain functions:
the score curve and its drawing, the candidates table's order, the budget used, a diff
between two configurations, and a run's best candidate beside its baseline, stage by
stage. No web framework here, so that each is tested on its own."""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dspex_kernel import ProgramSpec
from dspex_kernel.errors import DSPExError

from ..domain import CandidateRecord, ProgressPoint, RunRecord

# -- the score curve --------------------------------------------------------------------


@dataclass(frozen=True)
class CurvePoint:
    lm_calls: int
    score: float


@dataclass(frozen=True)
class Curve:
    """The best score so far over the run's LM calls (from its progress history), and each
    scored evaluation call placed at the LM calls the run had spent when it was scored."""

    best: list[CurvePoint]
    evaluations: list[CurvePoint]
    baseline: float | None = None


def curve(
    history: Sequence[ProgressPoint],
    scored: Sequence[CandidateRecord],
    baseline: float | None = None,
) -> Curve:
    best: list[CurvePoint] = []
    for point in sorted(history, key=lambda p: (p.lm_calls, p.at)):
        if point.best_score is None:
            continue
        if best and best[-1].lm_calls == point.lm_calls:
            best[-1] = CurvePoint(point.lm_calls, max(best[-1].score, point.best_score))
        elif not best or point.best_score != best[-1].score:
            best.append(CurvePoint(point.lm_calls, point.best_score))
    if history:
        last = max(history, key=lambda p: (p.lm_calls, p.at))
        if best and last.lm_calls > best[-1].lm_calls:
            # The curve runs on to the calls spent, flat since the last improvement.
            best.append(CurvePoint(last.lm_calls, best[-1].score))
    by_time = sorted(history, key=lambda p: p.at)
    times = [p.at for p in by_time]
    evaluations = []
    for record in scored:
        i = bisect.bisect_right(times, record.created_at)
        spent = by_time[i - 1].lm_calls if i else 0
        evaluations.append(CurvePoint(spent, record.score))
    return Curve(best=best, evaluations=evaluations, baseline=baseline)


@dataclass(frozen=True)
class Tick:
    at: float  # pixels
    label: str


@dataclass(frozen=True)
class Plot:
    """A :class:`Curve` in SVG coordinates: ``path`` is the best-so-far step line."""

    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    path: str
    dots: list[tuple[float, float, CurvePoint]]
    steps: list[tuple[float, float, CurvePoint]]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    baseline_y: float | None
    empty: bool


def plot(c: Curve, *, width: int = 960, height: int = 300) -> Plot:
    left, top, right, bottom = 48, 12, width - 12, height - 32
    xs = [p.lm_calls for p in (*c.best, *c.evaluations)] or [0]
    x_max = max(max(xs), 1)
    ys = [p.score for p in (*c.best, *c.evaluations)]
    if c.baseline is not None:
        ys.append(c.baseline)
    y_lo, y_hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
    y_lo, y_hi = min(0.0, y_lo), max(1.0, y_hi)

    def x_of(v: float) -> float:
        return round(left + (right - left) * v / x_max, 1)

    def y_of(v: float) -> float:
        return round(bottom - (bottom - top) * (v - y_lo) / ((y_hi - y_lo) or 1.0), 1)

    steps = [(x_of(p.lm_calls), y_of(p.score), p) for p in c.best]
    path = ""
    for i, (x, y, _) in enumerate(steps):
        if i == 0:
            path = f"M{x},{y}"
        else:
            path += f" H{x} V{y}"
    dots = [(x_of(p.lm_calls), y_of(p.score), p) for p in c.evaluations]
    x_ticks = [Tick(x_of(v), f"{v:g}") for v in _nice_ticks(0, x_max)]
    y_ticks = [Tick(y_of(v), f"{v:.2f}") for v in _nice_ticks(y_lo, y_hi)]
    return Plot(
        width=width,
        height=height,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        path=path,
        dots=dots,
        steps=steps,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        baseline_y=y_of(c.baseline) if c.baseline is not None else None,
        empty=not steps and not dots,
    )


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 10))
        v += step
    return ticks


# -- the candidates table ---------------------------------------------------------------

CANDIDATE_COLUMNS = ("created_at", "candidate_id", "score", "examples", "lm_calls", "latency_s")


def sort_candidates(
    rows: Sequence[CandidateRecord], column: str, descending: bool
) -> list[CandidateRecord]:
    """Rows ordered by ``column`` (missing values last), ties in the order scored."""
    if column not in CANDIDATE_COLUMNS:
        raise ValueError(f"cannot sort by {column!r}; columns: {', '.join(CANDIDATE_COLUMNS)}")
    present = [r for r in rows if getattr(r, column) is not None]
    missing = [r for r in rows if getattr(r, column) is None]
    ordered = sorted(present, key=lambda r: getattr(r, column), reverse=descending)
    return ordered + missing


# -- budget -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetLine:
    name: str
    used: float
    limit: float | None

    @property
    def fraction(self) -> float | None:
        if not self.limit:
            return None
        return min(1.0, self.used / self.limit)


def budget_used(run: RunRecord) -> list[BudgetLine]:
    """LM calls, cost and time spent, each against the run's limit where it set one."""
    budget = run.budget or {}

    def limit(key: str) -> float | None:
        value = budget.get(key)
        return float(value) if isinstance(value, int | float) else None

    return [
        BudgetLine("LM calls", float(run.lm_calls), limit("max_lm_calls")),
        BudgetLine("cost (USD)", run.cost_usd, limit("max_cost_usd")),
        BudgetLine("time (s)", run.wall_s or 0.0, limit("max_wall_s")),
    ]


# -- configuration diffs ----------------------------------------------------------------


@dataclass(frozen=True)
class DiffRow:
    path: str
    kind: str  # "added", "removed" or "changed"
    before: str | None
    after: str | None


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping) and value:
        for key in value:
            yield from _flatten(value[key], f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            yield from _flatten(item, f"{prefix}[{i}]")
    else:
        yield prefix, value


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def config_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[DiffRow]:
    """Every leaf that differs between two JSON documents, by path, in document order
    (``version`` is left out: two versions always differ there)."""
    a = {k: v for k, v in _flatten(before) if k != "version"}
    b = {k: v for k, v in _flatten(after) if k != "version"}
    rows = []
    for path in [*a, *(k for k in b if k not in a)]:
        if path not in b:
            rows.append(DiffRow(path, "removed", _shown(a[path]), None))
        elif path not in a:
            rows.append(DiffRow(path, "added", None, _shown(b[path])))
        elif a[path] != b[path]:
            rows.append(DiffRow(path, "changed", _shown(a[path]), _shown(b[path])))
    return rows


# -- best candidate beside the baseline ---------------------------------------------------

_SETTINGS = ("module", "model", "temperature", "max_tokens", "adapter")


@dataclass(frozen=True)
class StageSide:
    instructions: str | None
    demos: list[dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageComparison:
    stage: str
    baseline: StageSide
    best: StageSide

    @property
    def instructions_changed(self) -> bool:
        return self.baseline.instructions != self.best.instructions

    @property
    def demos_changed(self) -> bool:
        return self.baseline.demos != self.best.demos


def _side(spec: ProgramSpec, stage: str, module: str) -> StageSide:
    defaults = spec.configuration.defaults
    own = spec.configuration.stages.get(stage)
    settings: dict[str, Any] = {"module": module}

    def pick(key: str) -> Any:
        value = getattr(own, key) if own is not None else None
        return value if value is not None else getattr(defaults, key)

    for key in _SETTINGS:
        value = pick(key)
        if value is not None:
            settings[key] = value
    # Without configured instructions a stage runs with its signature's.
    instructions = pick("instructions") or spec.signatures[stage].instructions
    return StageSide(instructions=instructions, demos=list(pick("demos") or []), settings=settings)


def compare_best(
    baseline: Mapping[str, Any], overrides: Mapping[str, Any]
) -> list[StageComparison]:
    """Each stage's instructions, demos and settings as the program had them and as the
    best candidate's overrides make them. Raises ValueError for a spec that is not valid."""
    try:
        base = ProgramSpec.from_data(baseline)
        best = base.with_configuration(overrides)
    except DSPExError as e:
        raise ValueError(e.message) from e
    return [
        StageComparison(
            stage=s.name,
            baseline=_side(base, s.name, s.module),
            best=_side(best, s.name, s.module),
        )
        for s in base.stages
    ]
