"""The evaluator's handler as plain functions: every outcome of a proposal without a broker,
with a scripted LM, plus the replica-wide LM limit and the ack-deadline heartbeat."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from evaluator_helpers import eventually, math_qa, proposal

from dspex_contracts import DatasetRef, LMSettings, ProgramSource
from dspex_evaluator.adapters.lm import BoundedLM
from dspex_evaluator.handlers import (
    Scoring,
    candidate_overrides,
    dead_letter_reason,
    score_proposal,
    select,
)
from dspex_kernel import InputError, LMRateLimitError, LMUnavailableError, Metric, Runtime
from dspex_kernel.lm import LMRequest, LMResponse, Usage
from dspex_kernel.testing import ScriptedLM, chat_reply
from dspex_runtime.errors import Retry
from dspex_runtime.holding import heartbeats
from dspex_runtime.lm_settings import LMServiceSettings, resolve_metric
from dspex_runtime.programs import InMemoryProgramStore

pytestmark = pytest.mark.unit

SPEC = {
    "name": "qa",
    "stages": [{"name": "s", "module": "predict", "signature": "question -> answer: int"}],
}
INLINE = ProgramSource(spec=SPEC)
DATA = DatasetRef(examples=[{"question": f"{i} + 0?", "answer": i} for i in range(6)])


def reply_with_the_number(request: LMRequest) -> str:
    # Right for even numbers, wrong for odd ones: a known score per example.
    number = int(request.messages[-1]["content"].split("?")[0].split()[-3])
    return chat_reply(answer=number if number % 2 == 0 else number + 1)


class FlakyLM:
    """Fails with a retryable error on the questions it is told to."""

    def __init__(self, failing: set[int]) -> None:
        self.inner = ScriptedLM(reply_with_the_number)
        self.failing = failing

    async def complete(self, request: LMRequest) -> LMResponse:
        number = int(request.messages[-1]["content"].split("?")[0].split()[-3])
        if number in self.failing:
            raise LMRateLimitError("slow down")
        return await self.inner.complete(request)


def scoring(lm: Any = None, **settings: Any) -> tuple[Scoring, list[LMSettings]]:
    client = lm or ScriptedLM(reply_with_the_number)
    seen: list[LMSettings] = []
    lm_settings = LMServiceSettings(**settings)

    async def load(ref: DatasetRef) -> Sequence[Mapping[str, Any]]:
        assert ref.examples is not None
        return ref.examples

    def metric(name: str) -> Metric:
        return resolve_metric(name, lm_settings)

    def runtime_for(lm: LMSettings) -> Runtime:
        seen.append(lm)
        return Runtime(client, model=lm.model or "openai/default")

    deps = Scoring(InMemoryProgramStore([math_qa()]), load, metric, runtime_for, 4)
    return deps, seen


async def test_results_carry_the_dataset_indices_scores_and_usage() -> None:
    event = proposal(0, DATA, [5, 2, 4], program=INLINE)
    answer = await score_proposal(event, scoring()[0])
    payload = answer.payload
    assert answer.id == "run-test:0:scored"
    assert answer.causation_id == event.id
    assert [(r.index, r.score) for r in payload.results] == [(5, 0.0), (2, 1.0), (4, 1.0)]
    assert payload.results[0].outputs == {"answer": 6}
    assert payload.score == pytest.approx(2 / 3)
    assert payload.usage.calls == 3
    assert payload.error is None
    again = await score_proposal(event, scoring()[0])
    assert again.id == answer.id  # a redelivery publishes the same id: stored once


async def test_traces_are_returned_when_asked_for() -> None:
    event = proposal(0, DATA, [1], program=INLINE)
    event.payload.want_traces = True
    answer = await score_proposal(event, scoring()[0])
    trace = answer.payload.results[0].trace
    assert trace is not None
    assert trace[0]["stage"] == "s"


async def test_lm_settings_set_the_default_model_and_the_temperature() -> None:
    lm = ScriptedLM(reply_with_the_number)
    deps, seen = scoring(lm)
    settings = LMSettings(model="openai/event-model", temperature=0.7)
    await score_proposal(proposal(0, DATA, [0], program=INLINE, lm=settings), deps)
    assert seen == [settings]
    assert (lm.requests[0].model, lm.requests[0].temperature) == ("openai/event-model", 0.7)


def test_overrides_win_over_the_assignment_and_the_event_temperature() -> None:
    spec = math_qa()
    hot = LMSettings(temperature=0.9)
    mapped = candidate_overrides(spec, {"module": "chain_of_thought"}, {}, hot)
    assert mapped == {"solve.module": "chain_of_thought", "*.temperature": 0.9}
    own = candidate_overrides(spec, {"temperature": 0.2}, {"solve.module": "predict"}, hot)
    assert own == {"*.temperature": 0.2, "solve.module": "predict"}
    by_name = candidate_overrides(spec, {}, {"temperature": 0.1}, hot)
    assert by_name == {"temperature": 0.1}
    winner = candidate_overrides(spec, {"module": "chain_of_thought"}, {"solve.module": "x"}, hot)
    assert winner["solve.module"] == "x"
    assert candidate_overrides(spec, {}, {}, LMSettings()) == {}


async def test_a_failing_example_scores_zero_without_failing_the_call() -> None:
    event = proposal(0, DATA, [0, 2, 4], program=INLINE)
    answer = await score_proposal(event, scoring(FlakyLM({2}))[0])
    results = answer.payload.results
    assert [r.score for r in results] == [1.0, 0.0, 1.0]
    assert results[1].error is not None
    assert (results[1].error.code, results[1].error.retryable) == ("lm_rate_limited", True)
    assert answer.payload.error is None


async def test_every_example_failing_transiently_is_retried_until_the_last_delivery() -> None:
    event = proposal(0, DATA, [0, 2], program=INLINE)
    deps = scoring(FlakyLM({0, 2}))[0]
    with pytest.raises(Retry):
        await score_proposal(event, deps)
    answer = await score_proposal(event, deps, retry_transient=False)
    assert [r.score for r in answer.payload.results] == [0.0, 0.0]


@pytest.mark.parametrize(
    ("changes", "code", "dead_letter"),
    [
        ({"metric": "no_such_metric"}, "unknown_metric", True),
        ({"program": {"ref": {"name": "nothing"}}}, "unknown_program", True),
        ({"program": {"spec": {"name": "bad", "stages": []}}}, "invalid_program", False),
        ({"assignment": {"no_such_variable": 1}}, "invalid_configuration", False),
        ({"overrides": {"solve.temperature": 7}}, "invalid_configuration", False),
    ],
)
async def test_a_call_that_cannot_run_is_answered_with_its_error(
    changes: dict[str, Any], code: str, dead_letter: bool
) -> None:
    base = proposal(0, DATA, [0], program=ProgramSource(spec=math_qa().to_data()))
    data = base.model_dump(mode="json")
    data["payload"].update(changes)
    event = type(base).model_validate(data)
    answer = await score_proposal(event, scoring()[0])
    assert answer.payload.error is not None
    assert answer.payload.error.code == code
    assert (answer.payload.results, answer.payload.score) == ([], 0.0)
    assert dead_letter_reason(answer) == (code if dead_letter else None)


def test_indices_beyond_a_dataset_by_reference_are_invalid_input() -> None:
    # Inline datasets (and references with a count) are checked by the contract already.
    with pytest.raises(InputError, match=r"\[99\] are beyond the dataset's 2 examples"):
        select([{"a": 1}, {"a": 2}], [1, 99, 0])
    assert select([{"a": 1}, {"a": 2}], [1, 0, 1]) == [{"a": 2}, {"a": 1}, {"a": 2}]


async def test_an_unavailable_program_source_is_retried_until_the_last_delivery() -> None:
    class Unavailable(InMemoryProgramStore):
        async def get(self, name: str, version: int | None = None) -> Any:
            raise LMUnavailableError("registry did not answer")

    deps = scoring()[0]
    deps = Scoring(Unavailable(), deps.load_dataset, deps.metric, deps.runtime_for)
    event = proposal(0, DATA, [0])
    with pytest.raises(LMUnavailableError):
        await score_proposal(event, deps)
    answer = await score_proposal(event, deps, retry_transient=False)
    assert answer.payload.error is not None
    assert answer.payload.error.retryable


async def test_the_lm_limit_holds_across_calls() -> None:
    in_flight = peak = 0

    class SlowLM:
        async def complete(self, request: LMRequest) -> LMResponse:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1
            return LMResponse(chat_reply(answer=0), request.model, Usage(calls=1))

    bounded = BoundedLM(SlowLM(), 3)
    request = LMRequest(model="m", messages=[{"role": "user", "content": "hi"}])
    await asyncio.gather(*(bounded.complete(request) for _ in range(20)))
    assert peak == 3


async def test_a_long_evaluation_extends_its_ack_deadline() -> None:
    class Delivery:
        beats = 0

        async def in_progress(self) -> None:
            self.beats += 1

    delivery = Delivery()
    async with heartbeats(delivery, every_s=0.01):  # what the evaluator holds a proposal with
        await eventually(lambda: delivery.beats >= 2, "two heartbeats")
    beats = delivery.beats
    await asyncio.sleep(0.05)
    assert delivery.beats == beats  # and they stop with the evaluation
