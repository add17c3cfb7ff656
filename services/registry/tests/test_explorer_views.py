"""The run explorer's views as plain functions: the score curve and its drawing, axis
ticks, the candidates table's order, the budget used, configuration diffs, and the best
candidate beside the baseline on the bundled example program."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from registry_helpers import EXAMPLE

from dspex_contracts import RunStatus
from dspex_registry.domain import CandidateRecord, ProgressPoint, RunRecord
from dspex_registry.explorer import views
from dspex_registry.explorer.views import Curve, CurvePoint, DiffRow

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def point(
    lm_calls: int,
    when: float,
    best: float | None,
    *,
    evaluations: int = 0,
    status: RunStatus = RunStatus.RUNNING,
) -> ProgressPoint:
    return ProgressPoint("r1", status, evaluations, lm_calls, at(when), best_score=best)


def scored(
    n: int,
    when: float,
    score: float,
    *,
    candidate: str | None = None,
    examples: int = 3,
    lm_calls: int = 2,
    latency_s: float | None = 0.1,
) -> CandidateRecord:
    return CandidateRecord(
        call_id=f"r1:{n}",
        run_id="r1",
        candidate_id=candidate or f"c{n}",
        score=score,
        examples=examples,
        created_at=at(when),
        lm_calls=lm_calls,
        latency_s=latency_s,
    )


def math_qa() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((EXAMPLE / "program.yaml").read_text())
    return data


# -- the curve ------------------------------------------------------------------------------


def test_the_best_line_steps_only_when_the_best_changes_and_runs_on_to_the_last_call() -> None:
    history = [
        point(10, 1, 0.5),
        point(20, 2, 0.5),
        point(30, 3, 0.7),
        point(40, 4, 0.7),
        point(45, 5, None),  # no best yet said: no step of its own
        point(60, 6, 0.7, status=RunStatus.COMPLETED),
    ]
    c = views.curve(list(reversed(history)), [], baseline=0.4)
    assert c.best == [CurvePoint(10, 0.5), CurvePoint(30, 0.7), CurvePoint(60, 0.7)]
    assert c.baseline == 0.4
    assert c.evaluations == []


def test_the_best_line_ends_flat_at_a_last_point_without_a_score() -> None:
    c = views.curve([point(10, 1, 0.5), point(25, 2, None)], [])
    assert c.best == [CurvePoint(10, 0.5), CurvePoint(25, 0.5)]


def test_points_at_the_same_calls_keep_the_higher_best() -> None:
    paused = point(20, 3, 0.6, status=RunStatus.PAUSED)
    c = views.curve([point(10, 1, 0.5), point(20, 2, 0.8), paused], [])
    assert c.best == [CurvePoint(10, 0.5), CurvePoint(20, 0.8)]


def test_evaluations_are_placed_at_the_calls_spent_when_they_were_scored() -> None:
    history = [point(30, 3, 0.6), point(10, 1, 0.5), point(50, 5, 0.9)]
    calls = [
        scored(1, 0.5, 0.1),  # before the first report: nothing spent yet that we know of
        scored(2, 1, 0.2),  # at the first report's time
        scored(3, 2, 0.3),
        scored(4, 4, 0.4),
        scored(5, 9, 0.9),
    ]
    c = views.curve(history, calls)
    assert c.evaluations == [
        CurvePoint(0, 0.1),
        CurvePoint(10, 0.2),
        CurvePoint(10, 0.3),
        CurvePoint(30, 0.4),
        CurvePoint(50, 0.9),
    ]
    assert views.curve([], calls[:2]).evaluations == [CurvePoint(0, 0.1), CurvePoint(0, 0.2)]


def test_an_empty_run_has_an_empty_curve() -> None:
    assert views.curve([], []) == Curve(best=[], evaluations=[], baseline=None)
    drawn = views.plot(views.curve([], []))
    assert drawn.empty
    assert drawn.path == ""
    assert (drawn.steps, drawn.dots, drawn.baseline_y) == ([], [], None)


# -- the drawing ----------------------------------------------------------------------------


def test_the_plot_stays_in_its_box_and_moves_right_along_the_line() -> None:
    history = [point(n * 7, n, min(1.0, 0.1 * n)) for n in range(1, 12)]
    calls = [scored(n, n + 0.5, (n % 4) / 4) for n in range(1, 12)]
    drawn = views.plot(views.curve(history, calls, baseline=0.25), width=640, height=240)
    assert (drawn.left, drawn.top, drawn.right, drawn.bottom) == (48, 12, 628, 208)
    assert not drawn.empty
    for x, y, _ in (*drawn.steps, *drawn.dots):
        assert drawn.left <= x <= drawn.right
        assert drawn.top <= y <= drawn.bottom
    xs = [x for x, _, _ in drawn.steps]
    assert xs == sorted(xs)
    ys = [y for _, y, _ in drawn.steps]
    assert ys == sorted(ys, reverse=True)  # a rising best is drawn upwards
    assert drawn.baseline_y is not None
    assert drawn.top <= drawn.baseline_y <= drawn.bottom
    # The line reaches the right edge at the last LM call.
    assert drawn.steps[-1][0] == drawn.right


def test_plot_coordinates_and_path() -> None:
    c = Curve(best=[CurvePoint(0, 0.0), CurvePoint(50, 0.5), CurvePoint(100, 1.0)], evaluations=[])
    drawn = views.plot(c)
    # 960 x 300: x from 48 to 948 over 0..100 calls, y from 268 (score 0) to 12 (score 1).
    assert [(x, y) for x, y, _ in drawn.steps] == [(48.0, 268.0), (498.0, 140.0), (948.0, 12.0)]
    assert drawn.path == "M48.0,268.0 H498.0 V140.0 H948.0 V12.0"
    assert [t.label for t in drawn.x_ticks] == ["0", "20", "40", "60", "80", "100"]
    assert [t.at for t in drawn.x_ticks] == [48.0, 228.0, 408.0, 588.0, 768.0, 948.0]
    assert [t.label for t in drawn.y_ticks] == ["0.00", "0.20", "0.40", "0.60", "0.80", "1.00"]
    assert drawn.y_ticks[0].at == 268.0
    assert drawn.y_ticks[-1].at == 12.0


def test_the_baseline_line_sits_at_its_score() -> None:
    c = Curve(best=[CurvePoint(10, 0.9)], evaluations=[CurvePoint(5, 0.25)], baseline=0.75)
    drawn = views.plot(c)
    assert drawn.baseline_y == 76.0  # 268 - 256 * 0.75
    assert [(x, y) for x, y, _ in drawn.dots] == [(498.0, 204.0)]


# -- ticks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0, 50, [0, 10, 20, 30, 40, 50]),
        (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0, 7, [0, 2, 4, 6]),
        (0, 1234, [0, 250, 500, 750, 1000]),
        (0.3, 0.9, [0.4, 0.6, 0.8]),
        (5, 5, [5]),
    ],
)
def test_nice_ticks(lo: float, hi: float, expected: list[float]) -> None:
    assert views._nice_ticks(lo, hi) == pytest.approx(expected)


@pytest.mark.parametrize("hi", [1, 3, 9, 17, 99, 101, 640, 5000, 123_456])
def test_ticks_are_round_evenly_spaced_and_inside_the_range(hi: int) -> None:
    ticks = views._nice_ticks(0, hi)
    assert 2 <= len(ticks) <= 6
    assert ticks[0] == 0
    assert ticks[-1] <= hi
    steps = {round(b - a, 6) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1
    step = steps.pop()
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1, 2, 2.5, 5)


# -- the candidates table -------------------------------------------------------------------

ROWS = [
    scored(1, 1, 0.5, candidate="b", examples=3, lm_calls=6, latency_s=0.3),
    scored(2, 2, 0.9, candidate="a", examples=5, lm_calls=2, latency_s=None),
    scored(3, 3, 0.5, candidate="c", examples=1, lm_calls=9, latency_s=0.1),
    scored(4, 4, 0.2, candidate="a", examples=4, lm_calls=2, latency_s=0.2),
]


@pytest.mark.parametrize(
    ("column", "ascending", "descending"),
    [
        ("created_at", [1, 2, 3, 4], [4, 3, 2, 1]),
        ("candidate_id", [2, 4, 1, 3], [3, 1, 2, 4]),
        ("score", [4, 1, 3, 2], [2, 1, 3, 4]),
        ("examples", [3, 1, 4, 2], [2, 4, 1, 3]),
        ("lm_calls", [2, 4, 1, 3], [3, 1, 2, 4]),
        # No latency: last both ways.
        ("latency_s", [3, 4, 1, 2], [1, 4, 3, 2]),
    ],
)
def test_sort_candidates_by_each_column(
    column: str, ascending: list[int], descending: list[int]
) -> None:
    def order(descend: bool) -> list[int]:
        return [int(r.call_id.split(":")[1]) for r in views.sort_candidates(ROWS, column, descend)]

    assert order(False) == ascending
    assert order(True) == descending


def test_sort_candidates_refuses_an_unknown_column() -> None:
    with pytest.raises(ValueError, match="cannot sort by 'cost_usd'"):
        views.sort_candidates(ROWS, "cost_usd", False)
    assert views.sort_candidates([], "score", True) == []


# -- budget ---------------------------------------------------------------------------------


def run_record(**fields: Any) -> RunRecord:
    return RunRecord(run_id="r1", status=RunStatus.RUNNING, created_at=T0, **fields)


def test_budget_used_against_each_limit() -> None:
    run = run_record(
        budget={"max_lm_calls": 100, "max_cost_usd": 0.5, "max_wall_s": 60},
        lm_calls=40,
        cost_usd=0.6,
        wall_s=15.0,
    )
    lines = views.budget_used(run)
    assert [(b.name, b.used, b.limit) for b in lines] == [
        ("LM calls", 40.0, 100.0),
        ("cost (USD)", 0.6, 0.5),
        ("time (s)", 15.0, 60.0),
    ]
    assert [b.fraction for b in lines] == [pytest.approx(0.4), 1.0, pytest.approx(0.25)]


def test_budget_without_limits_has_no_fractions() -> None:
    lines = views.budget_used(run_record(budget=None, lm_calls=7))
    assert [(b.used, b.limit, b.fraction) for b in lines] == [
        (7.0, None, None),
        (0.0, None, None),
        (0.0, None, None),
    ]
    partial = views.budget_used(run_record(budget={"max_lm_calls": 0, "max_cost_usd": "x"}))
    assert [b.fraction for b in partial] == [None, None, None]


# -- configuration diffs --------------------------------------------------------------------


def test_config_diff_names_added_removed_and_changed_leaves() -> None:
    before = {
        "name": "qa",
        "version": 1,
        "configuration": {"defaults": {"model": "m1", "temperature": 0.0}},
        "stages": [{"name": "solve", "demos": [{"q": "1+1", "a": 2}, {"q": "2+2", "a": 4}]}],
    }
    after = {
        "name": "qa",
        "version": 2,
        "configuration": {"defaults": {"model": "m2", "max_tokens": 100}},
        "stages": [{"name": "solve", "demos": [{"q": "1+1", "a": 3}]}],
    }
    assert views.config_diff(before, after) == [
        DiffRow("configuration.defaults.model", "changed", "m1", "m2"),
        DiffRow("configuration.defaults.temperature", "removed", "0.0", None),
        DiffRow("stages[0].demos[0].a", "changed", "2", "3"),
        DiffRow("stages[0].demos[1].q", "removed", "2+2", None),
        DiffRow("stages[0].demos[1].a", "removed", "4", None),
        DiffRow("configuration.defaults.max_tokens", "added", None, "100"),
    ]


def test_config_diff_ignores_the_version_and_finds_nothing_between_equals() -> None:
    spec = math_qa()
    assert views.config_diff(spec, {**spec, "version": 7}) == []
    assert views.config_diff({}, {}) == []
    assert views.config_diff({"a": []}, {"a": {}}) == [DiffRow("a", "changed", "[]", "{}")]
    removed = views.config_diff({"a": None, "b": 1}, {"b": 1})
    assert removed == [DiffRow("a", "removed", "null", None)]


# -- best candidate beside the baseline -----------------------------------------------------


def test_compare_best_shows_the_overrides_on_the_best_side_only() -> None:
    demos = [{"question": "What is 1 + 1?", "answer": 2}]
    [stage] = views.compare_best(
        math_qa(), {"solve.instructions": "Answer with a number only.", "demos": demos}
    )
    assert stage.stage == "solve"
    assert stage.best.instructions == "Answer with a number only."
    assert stage.best.demos == demos
    assert stage.baseline.instructions != "Answer with a number only."
    assert stage.baseline.demos == []
    assert stage.instructions_changed
    assert stage.demos_changed
    settings = {"module": "predict", "model": "openai/sim-base", "temperature": 0.0}
    assert stage.baseline.settings == settings
    assert stage.best.settings == settings


def test_compare_best_shows_changed_settings() -> None:
    [stage] = views.compare_best(
        math_qa(), {"model": "openai/sim-large", "solve.module": "chain_of_thought"}
    )
    assert stage.baseline.settings["model"] == "openai/sim-base"
    assert stage.best.settings == {
        "module": "chain_of_thought",
        "model": "openai/sim-large",
        "temperature": 0.0,
    }
    assert not stage.instructions_changed
    assert not stage.demos_changed


def test_without_overrides_both_sides_are_the_same() -> None:
    [stage] = views.compare_best(math_qa(), {})
    assert stage.baseline == stage.best


def test_the_baseline_shows_the_instructions_the_program_runs_with() -> None:
    [stage] = views.compare_best(math_qa(), {"solve.instructions": "Answer with a number."})
    assert stage.baseline.instructions == "Answer the question."


@pytest.mark.parametrize(
    ("spec", "overrides"),
    [
        ({"name": "broken"}, {}),  # no stages
        (math_qa(), {"nowhere.instructions": "x"}),  # no such stage
        (math_qa(), {"temperature": 5.0}),  # outside the variable's range
    ],
    ids=["invalid-spec", "unknown-stage", "out-of-range"],
)
def test_compare_best_of_an_invalid_spec_raises_value_error(
    spec: dict[str, Any], overrides: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        views.compare_best(spec, overrides)
