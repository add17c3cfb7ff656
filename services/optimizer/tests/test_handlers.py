"""The optimizer's plain rules: call ids, candidate ids, command order, merging scored
batches into one Evaluation, and the estimate of the time left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dspex_contracts import CandidateScoredPayload, ErrorInfo, ExampleScore, UsageInfo
from dspex_kernel import Usage
from dspex_kernel.optimize import Budget, RunState
from dspex_optimizer.handlers import (
    batch_call_id,
    candidate_id,
    eta_s,
    evaluation_from,
    parse_call_id,
    split_overrides,
    supersedes,
)
from dspex_optimizer.ports import ControlCommand

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@given(
    run_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,20}", fullmatch=True),
    call=st.integers(0, 10**6),
    batches=st.integers(1, 50),
    data=st.data(),
)
def test_call_ids_parse_back(run_id: str, call: int, batches: int, data: st.DataObject) -> None:
    batch = data.draw(st.integers(0, batches - 1))
    call_id = batch_call_id(run_id, call, batch, batches)
    assert parse_call_id(run_id, call_id) == (call, batch)
    assert (call_id == f"{run_id}:{call}") == (batches == 1)


def test_foreign_call_ids_are_not_parsed() -> None:
    assert parse_call_id("run", "other:3") is None
    assert parse_call_id("run", "run:x") is None
    assert parse_call_id("run", "run:3:bx") is None
    assert parse_call_id("run-1", "run:3") is None


def test_candidate_ids_follow_the_configuration_not_the_key_order() -> None:
    a = candidate_id({"temperature": 0.3, "module": "predict"})
    assert a == candidate_id({"module": "predict", "temperature": 0.3})
    assert a != candidate_id({"module": "predict", "temperature": 0.4})
    assert a.startswith("c")


def test_overrides_split_into_variables_and_paths() -> None:
    assignment, rest = split_overrides(
        {"temperature": 0.2, "answer.instructions": "Be brief."}, ["temperature", "module"]
    )
    assert assignment == {"temperature": 0.2}
    assert rest == {"answer.instructions": "Be brief."}


def test_a_cancel_is_final_and_otherwise_the_latest_command_wins() -> None:
    pause = ControlCommand("pause", T0, "p")
    resume = ControlCommand("run", T0 + timedelta(seconds=1), "r")
    cancel = ControlCommand("cancel", T0 - timedelta(seconds=5), "c")
    assert supersedes(resume, pause)
    assert not supersedes(pause, resume)  # an older pause arriving late changes nothing
    assert supersedes(cancel, resume)  # however old
    assert not supersedes(ControlCommand("run", T0 + timedelta(days=1), "x"), cancel)


def scored(indices: list[int], scores: list[float], calls: int = 1) -> CandidateScoredPayload:
    return CandidateScoredPayload(
        run_id="r",
        call_id="r:1",
        candidate_id="c1",
        results=[
            ExampleScore(index=i, score=s, usage=UsageInfo(calls=calls))
            for i, s in zip(indices, scores, strict=True)
        ],
        score=sum(scores) / len(scores),
        usage=UsageInfo(calls=calls * len(indices), cost_usd=0.5),
        latency_s=0.1,
    )


def test_batches_merge_in_the_requested_order_and_failed_batches_score_zero() -> None:
    failed = CandidateScoredPayload(
        run_id="r",
        call_id="r:1:b2",
        candidate_id="c1",
        score=0.0,
        latency_s=0.0,
        error=ErrorInfo(code="invalid_configuration", message="no such module"),
    )
    evaluation = evaluation_from(
        1,
        {"temperature": 0.5},
        "val",
        [((4, 1), scored([1, 4], [1.0, 0.0])), ((0,), scored([0], [1.0])), ((2, 3), failed)],
    )
    assert evaluation.indices == (4, 1, 0, 2, 3)
    assert [o.index for o in evaluation.outcomes] == [4, 1, 0, 2, 3]
    assert [o.score for o in evaluation.outcomes] == [0.0, 1.0, 1.0, 0.0, 0.0]
    assert evaluation.score == pytest.approx(2 / 5)
    assert evaluation.outcomes[3].error is not None
    assert evaluation.outcomes[3].error["code"] == "invalid_configuration"
    assert evaluation.usage == Usage(calls=3, cost_usd=1.0)
    assert (evaluation.call, evaluation.split) == (1, "val")


def test_eta_follows_the_nearest_budget() -> None:
    state = RunState(usage=Usage(calls=100, cost_usd=1.0), elapsed_s=10.0)
    assert eta_s(state, Budget()) is None
    assert eta_s(state, Budget(max_lm_calls=400)) == pytest.approx(30.0)
    assert eta_s(state, Budget(max_lm_calls=400, max_wall_s=15.0)) == pytest.approx(5.0)
    assert eta_s(state, Budget(max_cost_usd=1.5)) == pytest.approx(5.0)
    assert eta_s(state, Budget(max_wall_s=5.0)) == 0.0
