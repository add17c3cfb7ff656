"""The runner: numbering, replay after a crash, budgets, pause and cancel, failures, the
log's records, and ``optimize()`` in process — against fakes whose score is a function of
the candidate's overrides."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import pytest

from dspex_kernel import (
    Budget,
    ConfigurationError,
    Evaluation,
    ExampleOutcome,
    InMemoryCallLog,
    LMRequest,
    LMResponse,
    LMUnavailableError,
    ProgramSpec,
    Runner,
    RunOutcome,
    RunState,
    Runtime,
    StrategyContext,
    StrategyResult,
    UnknownStrategyError,
    Usage,
    optimize,
)
from dspex_kernel.optimize import (
    evaluation_from_record,
    evaluation_to_record,
    lm_response_from_record,
    lm_response_to_record,
)
from dspex_kernel.strategies import Split, Strategy, scores_own_baseline
from dspex_kernel.strategies._run_types import PortFailed
from dspex_kernel.testing import ScriptedLM, chat_reply

pytestmark = pytest.mark.unit

SPEC = ProgramSpec.from_data(
    {
        "name": "t",
        "stages": [{"name": "s", "module": "predict", "signature": "q -> a: int"}],
        "configuration": {"defaults": {"model": "m"}},
        "variables": {
            "variables": [
                {"name": "k", "kind": "int", "path": "s.max_tokens", "low": 1, "high": 99},
                {
                    "name": "temperature",
                    "kind": "float",
                    "path": "*.temperature",
                    "low": 0.0,
                    "high": 1.0,
                },
            ]
        },
    }
)
TRAIN = [{"q": f"train {i}", "a": i} for i in range(12)]
VAL = [{"q": f"val {i}", "a": i} for i in range(6)]


class Crash(BaseException):
    """A process dying mid-run (not an Exception: nothing may swallow it)."""


def score_of(overrides: Mapping[str, Any]) -> float:
    return float(overrides.get("k", overrides.get("s.max_tokens", 10))) / 100


class FakeEvaluate:
    """Scores are ``k / 100``; usage and cost grow with the number of examples."""

    def __init__(
        self,
        *,
        crash_at: int | None = None,
        delays: Mapping[int, float] | None = None,
        on_call: Any = None,
    ) -> None:
        self.calls: list[tuple[int, dict[str, Any], str, tuple[int, ...]]] = []
        self.finished: list[int] = []
        self.crash_at, self.delays, self.on_call = crash_at, dict(delays or {}), on_call

    async def __call__(
        self,
        call: int,
        overrides: Mapping[str, Any],
        split: Split,
        indices: tuple[int, ...],
        want_traces: bool,
    ) -> Evaluation:
        self.calls.append((call, dict(overrides), split, indices))
        if self.on_call is not None:
            self.on_call(call)
        if call == self.crash_at:
            raise Crash()
        if call in self.delays:
            await asyncio.sleep(self.delays[call])
        self.finished.append(call)
        score = score_of(overrides)
        outcomes = tuple(
            ExampleOutcome(
                i,
                score,
                {"a": i},
                None if i % 3 else {"code": "x", "message": "m"},
                ({"stage": "s", "inputs": {"q": "?"}, "outputs": {"a": i}},) if want_traces else (),
            )
            for i in indices
        )
        n = len(indices)
        usage = Usage(n, n // 3, 7 * n, 2 * n, 0.1 * n + 0.2)
        return Evaluation(call, dict(overrides), split, indices, score, outcomes, usage)


class FakeLM:
    def __init__(self) -> None:
        self.calls: list[int] = []

    async def __call__(self, call: int, request: LMRequest) -> LMResponse:
        self.calls.append(call)
        return LMResponse(f"idea {call}", request.model, Usage(1, 1, 3, 4, 0.0), 0.25, True, "stop")


async def sweep(ctx: StrategyContext) -> StrategyResult:
    """Sequential: five candidates, one after another; the best wins (ties: earlier)."""
    assert ctx.baseline is not None
    best: tuple[dict[str, Any], float] = ({}, ctx.baseline.score)
    for k in (20, 40, 30, 5, 40, 35):
        ev = await ctx.evaluate({"k": k})
        if ev.score > best[1]:
            best = ({"k": k}, ev.score)
    return StrategyResult(best[0], best[1])


async def fan_out(ctx: StrategyContext) -> StrategyResult:
    """Concurrent: eight candidates at once, plus an LM call and a train minibatch."""
    idea = await ctx.lm(LMRequest("m", [{"role": "user", "content": "ideas?"}]))
    ks = [int(idea.text.split()[-1]) * 10 + i for i in range(8)]
    evs = await asyncio.gather(*(ctx.evaluate({"k": k}) for k in ks))
    await ctx.evaluate({"k": 3}, [1, 4], split="train", want_traces=True)
    best = max(zip(ks, evs, strict=True), key=lambda p: p[1].score)
    return StrategyResult({"k": best[0]}, best[1].score)


def runner(
    strategy: Strategy | str,
    log: InMemoryCallLog,
    ev: FakeEvaluate,
    lm: FakeLM | None = None,
    **kw: Any,
) -> Runner:
    return Runner(
        SPEC, TRAIN, VAL, strategy=strategy, seed=7, log=log, evaluate=ev, lm=lm or FakeLM(), **kw
    )


async def test_baseline_is_call_zero_and_the_strategy_result_wins() -> None:
    ev, progress = FakeEvaluate(), []

    async def on_progress(state: RunState) -> None:
        progress.append(state)

    outcome = await runner(sweep, InMemoryCallLog(), ev, on_progress=on_progress).run()
    assert ev.calls[0] == (0, {}, "val", tuple(range(6)))
    # Call 5 asks again for k=40, which call 2 scored: only the examples that failed there
    # (every third) go to the backend again.
    assert [c[0] for c in ev.calls] == list(range(7))
    assert ev.calls[5] == (5, {"k": 40}, "val", (0, 3))
    assert outcome.status == "completed"
    assert outcome.stop_reason == "finished"
    assert (outcome.best_overrides, outcome.best_score, outcome.best_call) == ({"k": 40}, 0.4, 2)
    assert outcome.baseline_score == 0.1
    assert outcome.evaluations == 7
    assert outcome.error is None
    usage = outcome.usage
    assert (usage.calls, usage.cached_calls, usage.prompt_tokens) == (38, 12, 266)
    assert (usage.completion_tokens, usage.cost_usd) == (76, pytest.approx(6 * 0.8 + 0.4))
    assert (outcome.lm_calls, outcome.cached_calls) == (38, 12)
    assert [p.evaluations for p in progress] == list(range(1, 8))
    assert progress[-1].best_call == 2
    assert progress[-1].best_score == 0.4


@scores_own_baseline
async def narrowing(ctx: StrategyContext) -> StrategyResult:
    """Scores its own baseline, on three valset examples, after a train evaluation."""
    assert ctx.baseline is None
    await ctx.evaluate({"k": 3}, [0, 1], split="train")
    ctx.sample_valset(3)
    with pytest.raises(RuntimeError, match="once"):
        ctx.sample_valset(2)
    baseline = await ctx.evaluate({})
    candidate = await ctx.evaluate({"k": 30}, [0, 2])
    assert [o.index for o in candidate.outcomes] == [0, 2]  # the strategy's numbering
    assert candidate.indices == (0, 2)
    full = await ctx.evaluate({"k": 30})  # reuses 0 and 2 where they had no error
    assert (len(ctx.valset), full.indices) == (3, (0, 1, 2))
    assert [o.index for o in full.outcomes] == [0, 1, 2]
    return StrategyResult({"k": 30}, full.score, {"baseline": baseline.score})


async def test_a_strategy_scoring_its_own_baseline_may_narrow_the_valset_first() -> None:
    ev, log = FakeEvaluate(), InMemoryCallLog()
    outcome = await runner(narrowing, log, ev).run()
    assert outcome.status == "completed", outcome.error
    assert ev.calls[0] == (0, {"k": 3}, "train", (0, 1))  # no baseline before the strategy
    sample = ev.calls[1][3]
    assert ev.calls[1][:3] == (1, {}, "val")
    assert len(sample) == 3
    assert set(sample) < set(range(len(VAL)))
    assert list(sample) == sorted(sample)
    # The backend and the log see the valset's own numbering, and reuse works in it: of
    # the two examples scored, the one without an error (valset index % 3) is not sent.
    assert ev.calls[2] == (2, {"k": 30}, "val", (sample[0], sample[2]))
    again_sent = tuple(i for i in sample if i == sample[1] or i % 3 == 0)
    assert ev.calls[3] == (3, {"k": 30}, "val", again_sent)
    assert all(set(c[3]) <= set(sample) for c in ev.calls[1:])
    # Full-valset scores are scores on the sample: the baseline and the best are tracked.
    assert outcome.baseline_score == outcome.details["baseline"] == 0.1
    assert (outcome.best_overrides, outcome.best_score, outcome.best_call) == ({"k": 30}, 0.3, 3)
    # Drawn from the seed: a replay narrows alike and asks nothing.
    again = FakeEvaluate()
    replayed = await runner(narrowing, log, again).run()
    assert again.calls == []
    assert same_result(outcome, replayed)


async def test_only_a_strategy_scoring_its_own_baseline_may_narrow_the_valset() -> None:
    async def late(ctx: StrategyContext) -> StrategyResult:
        # The runner scored the baseline on the whole valset: it stays the valset.
        ctx.sample_valset(2)
        full = await ctx.evaluate({"k": 20})
        return StrategyResult({"k": 20}, full.score, {"size": len(ctx.valset)})

    ev = FakeEvaluate()
    outcome = await runner(late, InMemoryCallLog(), ev).run()
    assert outcome.status == "completed"
    assert outcome.details["size"] == len(VAL)
    assert ev.calls[1] == (1, {"k": 20}, "val", tuple(range(len(VAL))))

    @scores_own_baseline
    async def after_use(ctx: StrategyContext) -> StrategyResult:
        await ctx.evaluate({}, [0])
        ctx.sample_valset(2)
        return StrategyResult({}, 0.0)

    outcome = await runner(after_use, InMemoryCallLog(), FakeEvaluate()).run()
    assert outcome.error is not None
    assert "before its first use" in outcome.error["message"]


async def test_same_seed_same_calls_and_outcome() -> None:
    runs = []
    for _ in range(2):
        ev = FakeEvaluate()
        outcome = await runner("random", InMemoryCallLog(), ev).run()
        runs.append((ev.calls, outcome))
    assert runs[0][0] == runs[1][0]
    assert same_result(runs[0][1], runs[1][1])
    other = FakeEvaluate()
    await Runner(
        SPEC,
        TRAIN,
        VAL,
        strategy="random",
        seed=8,
        log=InMemoryCallLog(),
        evaluate=other,
        lm=FakeLM(),
    ).run()
    assert other.calls != runs[0][0]


@pytest.mark.parametrize("strategy", [sweep, fan_out, "random"])
async def test_a_crashed_run_replays_its_log_and_ends_like_an_uninterrupted_one(
    strategy: Strategy | str,
) -> None:
    reference = await runner(strategy, InMemoryCallLog(), FakeEvaluate()).run()
    log = InMemoryCallLog()
    first_ev, first_lm = FakeEvaluate(crash_at=5), FakeLM()
    with pytest.raises(Crash):
        await runner(strategy, log, first_ev, first_lm).run()
    recorded = set(log_keys(log))
    assert 5 not in recorded
    assert {0, 1} <= recorded

    ev, lm = FakeEvaluate(), FakeLM()
    outcome = await runner(strategy, log, ev, lm).run()
    assert not recorded & ({c[0] for c in ev.calls} | set(lm.calls))  # served from the log
    assert min(c[0] for c in ev.calls) == 5
    assert same_result(outcome, reference)


async def test_a_cancelled_task_replays_too() -> None:
    reference = await runner(sweep, InMemoryCallLog(), FakeEvaluate()).run()
    log, reached = InMemoryCallLog(), asyncio.Event()

    def stall(call: int) -> None:
        if call == 3:
            reached.set()

    ev = FakeEvaluate(on_call=stall, delays={3: 30.0})
    task = asyncio.create_task(runner(sweep, log, ev).run())
    await reached.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(log_keys(log)) == [0, 1, 2]
    again = FakeEvaluate()
    outcome = await runner(sweep, log, again).run()
    assert [c[0] for c in again.calls] == [3, 4, 5, 6]
    assert same_result(outcome, reference)


async def test_concurrent_calls_are_numbered_in_program_order() -> None:
    # Answers arrive in reverse order; numbers and the log still follow the program.
    delays = {n: 0.002 * (12 - n) for n in range(12)}
    log, ev = InMemoryCallLog(), FakeEvaluate(delays=delays)
    first = await runner(fan_out, log, ev).run()
    by_call = {c[0]: c[1] for c in ev.calls}
    assert [by_call[n]["k"] for n in range(2, 10)] == [10 + i for i in range(8)]
    records = {n: await log.get(n) or {} for n in log_keys(log)}
    assert records[1]["kind"] == "lm"
    assert records[10]["split"] == "train"
    assert all(records[n]["overrides"] == {"k": 8 + n} for n in range(2, 10))
    again = FakeEvaluate(delays={n: 0.002 * n for n in range(12)})
    replayed = await runner(fan_out, log, again).run()
    assert again.calls == []
    assert same_result(replayed, first)


async def test_a_call_takes_its_number_when_made_not_when_awaited() -> None:
    ev = FakeEvaluate()

    async def await_in_reverse(ctx: StrategyContext) -> StrategyResult:
        first, second = ctx.evaluate({"k": 1}), ctx.evaluate({"k": 2})
        await second
        await first
        return StrategyResult({}, 0.0)

    await runner(await_in_reverse, InMemoryCallLog(), ev).run()
    assert [(c[0], c[1]) for c in ev.calls] == [(0, {}), (2, {"k": 2}), (1, {"k": 1})]


async def test_the_memory_log_keeps_the_first_record_and_only_json() -> None:
    log = InMemoryCallLog()
    await log.put(3, {"kind": "lm", "text": "first"})
    await log.put(3, {"kind": "lm", "text": "second"})
    assert await log.get(3) == {"kind": "lm", "text": "first"}
    assert await log.get(4) is None
    with pytest.raises(TypeError):
        await log.put(5, {"kind": "lm", "value": object()})
    assert log.numbers() == [3]


async def test_port_failures_propagate_for_a_retry_that_replays() -> None:
    class FlakyLog(InMemoryCallLog):
        async def put(self, n: int, record: dict[str, Any]) -> None:
            if n == 3:
                raise ConnectionError("store unreachable")
            await super().put(n, record)

    flaky = FlakyLog()
    with pytest.raises(ConnectionError, match="store unreachable"):
        await runner(sweep, flaky, FakeEvaluate()).run()

    class Broken(FakeEvaluate):
        async def __call__(
            self,
            call: int,
            overrides: Mapping[str, Any],
            split: Split,
            indices: tuple[int, ...],
            want_traces: bool,
        ) -> Evaluation:
            raise OSError("bus down")

    with pytest.raises(OSError, match="bus down"):
        await runner(sweep, InMemoryCallLog(), Broken()).run()
    log = InMemoryCallLog()
    for n in flaky.numbers():
        record = await flaky.get(n)
        assert record is not None
        await log.put(n, record)
    ev = FakeEvaluate()
    outcome = await runner(sweep, log, ev).run()
    assert [c[0] for c in ev.calls] == [3, 4, 5, 6]
    assert outcome.status == "completed"


async def test_a_replay_that_diverges_fails_with_replay_mismatch() -> None:
    log = InMemoryCallLog()
    await runner(sweep, log, FakeEvaluate()).run()

    async def other(ctx: StrategyContext) -> StrategyResult:
        await ctx.evaluate({"k": 77})
        return StrategyResult({}, 0.0)

    outcome = await runner(other, log, FakeEvaluate()).run()
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error["code"] == "replay_mismatch"


@pytest.mark.parametrize(
    ("budget", "reason", "evaluations"),
    [
        (Budget(max_lm_calls=18), "max_lm_calls", 3),  # 6 calls per evaluation
        (Budget(max_cost_usd=2.0), "max_cost_usd", 3),  # 0.8 USD per evaluation
        (Budget(max_lm_calls=10**6, max_cost_usd=10.0), "max_cost_usd", 13),
    ],
)
async def test_budgets_end_the_run_with_the_best_so_far(
    budget: Budget, reason: str, evaluations: int
) -> None:
    ev = FakeEvaluate()

    async def long_sweep(ctx: StrategyContext) -> StrategyResult:
        for k in (50, 20, 60, 10, 70, 30, 80, 90, 15, 25, 35, 45, 55, 65):
            await ctx.evaluate({"k": k})
        return StrategyResult({}, 0.0)

    outcome = await runner(long_sweep, InMemoryCallLog(), ev, budget=budget).run()
    assert (outcome.status, outcome.stop_reason) == ("budget_exhausted", reason)
    assert outcome.evaluations == len(ev.calls) == evaluations
    assert outcome.best_score == max(score_of(c[1]) for c in ev.calls)
    assert outcome.best_overrides == max((c[1] for c in ev.calls), key=score_of)


async def test_max_wall_s_with_an_injected_clock() -> None:
    now = [100.0]

    def tick(call: int) -> None:
        now[0] += 10.0

    ev = FakeEvaluate(on_call=tick)
    outcome = await runner(
        sweep, InMemoryCallLog(), ev, budget=Budget(max_wall_s=35.0), clock=lambda: now[0]
    ).run()
    assert (outcome.status, outcome.stop_reason) == ("budget_exhausted", "max_wall_s")
    assert [c[0] for c in ev.calls] == [0, 1, 2, 3]
    assert outcome.wall_s == 40.0
    assert (outcome.best_overrides, outcome.best_score) == ({"k": 40}, 0.4)


async def test_pause_waits_without_counting_time_then_resumes() -> None:
    now, answers, statuses = [0.0], ["run", "run", "pause", "pause", "pause", "run"], []
    said: list[str] = []

    async def control() -> str:
        if said and said[-1] == "pause":
            now[0] += 100.0  # the time a paused run spends between two polls
        said.append(answers.pop(0) if len(answers) > 1 else answers[0])
        return said[-1]

    def tick(call: int) -> None:
        now[0] += 1.0

    async def on_progress(state: RunState) -> None:
        statuses.append(state.status)

    ev = FakeEvaluate(on_call=tick)
    outcome = await runner(
        sweep,
        InMemoryCallLog(),
        ev,
        control=control,
        clock=lambda: now[0],
        on_progress=on_progress,
        poll_s=0.001,
    ).run()
    assert outcome.status == "completed"
    assert len(ev.calls) == 7
    assert said[:6] == ["run", "run", "pause", "pause", "pause", "run"]
    assert statuses[:4] == ["running", "running", "paused", "running"]
    assert now[0] == 307.0
    assert outcome.wall_s == 7.0


async def test_cancel_ends_the_run_with_the_best_so_far_and_no_more_calls() -> None:
    ev = FakeEvaluate()

    async def control() -> str:
        return "cancel" if len(ev.calls) >= 3 else "run"

    outcome = await runner(sweep, InMemoryCallLog(), ev, control=control).run()
    assert (outcome.status, outcome.stop_reason) == ("cancelled", "cancelled")
    assert len(ev.calls) == 3
    assert (outcome.best_overrides, outcome.best_score) == ({"k": 40}, 0.4)


async def test_a_failing_strategy_ends_failed_with_the_error() -> None:
    async def broken(ctx: StrategyContext) -> StrategyResult:
        await ctx.evaluate({"k": 30})
        raise RuntimeError("boom")

    outcome = await runner(broken, InMemoryCallLog(), FakeEvaluate()).run()
    assert outcome.status == "failed"
    assert outcome.stop_reason == "error"
    assert outcome.error == {
        "code": "strategy_error",
        "message": "RuntimeError: boom",
        "retryable": False,
    }
    assert outcome.best_score == 0.3


async def test_backend_errors_fail_the_run_unless_retryable() -> None:
    class Failing(FakeEvaluate):
        def __init__(self, error: Exception) -> None:
            super().__init__()
            self.error = error

        async def __call__(
            self,
            call: int,
            overrides: Mapping[str, Any],
            split: Split,
            indices: tuple[int, ...],
            want_traces: bool,
        ) -> Evaluation:
            if call == 2:
                raise self.error
            return await super().__call__(call, overrides, split, indices, want_traces)

    outcome = await runner(sweep, InMemoryCallLog(), Failing(ConfigurationError("bad"))).run()
    assert outcome.status == "failed"
    assert outcome.error == {"code": "invalid_configuration", "message": "bad", "retryable": False}
    with pytest.raises(LMUnavailableError):
        await runner(sweep, InMemoryCallLog(), Failing(LMUnavailableError("down"))).run()


async def test_siblings_of_a_failed_gather_do_not_outlive_the_run() -> None:
    ev = FakeEvaluate(delays={n: 0.05 for n in range(1, 12)})

    async def gather_then_fail(ctx: StrategyContext) -> StrategyResult:
        async def fail() -> None:
            raise RuntimeError("early")

        await asyncio.gather(fail(), *(ctx.evaluate({"k": k}) for k in range(1, 9)))
        return StrategyResult({}, 0.0)

    log = InMemoryCallLog()
    outcome = await runner(gather_then_fail, log, ev).run()
    await asyncio.sleep(0.1)
    assert ev.finished == [0]  # the siblings were cancelled, not left running
    assert outcome.status == "failed"
    assert outcome.evaluations == 1
    assert log_keys(log) == [0]


@pytest.mark.parametrize("arrival", ["in order", "reversed"])
async def test_best_so_far_ties_go_to_the_earlier_call_whatever_the_arrival(arrival: str) -> None:
    delays = {n: 0.002 * (n if arrival == "in order" else 10 - n) for n in range(1, 5)}
    ev = FakeEvaluate(delays=delays)

    async def equal_then_fail(ctx: StrategyContext) -> StrategyResult:
        await asyncio.gather(*(ctx.evaluate({"k": 40, "temperature": t}) for t in (0, 1, 0.5)))
        raise RuntimeError("stop here")

    outcome = await runner(equal_then_fail, InMemoryCallLog(), ev).run()
    assert [c[0] for c in ev.calls] == [0, 1, 2, 3]
    assert (outcome.best_call, outcome.best_overrides) == (1, {"k": 40, "temperature": 0})


def test_records_round_trip_exactly() -> None:
    evaluation = Evaluation(
        call=3,
        overrides={"s.demos": [{"q": "1+1", "a": 2}], "temperature": 0.1 + 0.2},
        split="train",
        indices=(4, 0, 2),
        score=1 / 3,
        outcomes=(
            ExampleOutcome(
                4,
                1.0,
                {"a": 2, "reasoning": "ü"},
                None,
                ({"stage": "s", "inputs": {"q": "x"}, "outputs": {"a": 2}},),
            ),
            ExampleOutcome(
                0, 0.0, {}, {"code": "unparseable_reply", "message": "?", "retryable": False}
            ),
            ExampleOutcome(2, 0.1 + 0.2, {"a": None}),
        ),
        usage=Usage(7, 3, 1234, 56, 0.1 + 0.2 + 1e-12),
    )
    record = json.loads(json.dumps(evaluation_to_record(evaluation)))
    assert evaluation_from_record(record) == evaluation
    response = LMResponse("text [[ ## a ## ]]", "m", Usage(1, 1, 5, 6, 1e-9), 0.125, True, None)
    record = json.loads(json.dumps(lm_response_to_record(9, "key", response)))
    assert lm_response_from_record(record) == response
    assert record["kind"] == "lm"
    assert record["request_key"] == "key"


async def test_lm_calls_are_recorded_counted_and_replayed() -> None:
    log, lm = InMemoryCallLog(), FakeLM()
    first = await runner(fan_out, log, FakeEvaluate(), lm).run()
    assert lm.calls == [1]
    assert first.usage.calls == 6 * 9 + 2 + 1
    assert first.cached_calls == 2 * 9 + 1
    again = FakeLM()
    second = await runner(fan_out, log, FakeEvaluate(), again).run()
    assert again.calls == []
    assert same_result(second, first)


async def test_optimize_in_process_scores_the_chosen_examples() -> None:
    def reply(request: LMRequest) -> str:
        question = request.messages[-1]["content"].split("\n")[1]
        number = int(question.split()[-1])
        # The model answers right only when asked for at most 20 tokens.
        return chat_reply(a=number if (request.max_tokens or 99) <= 20 else number + 1000)

    lm = ScriptedLM(reply)
    seen: list[Evaluation] = []

    async def minibatch(ctx: StrategyContext) -> StrategyResult:
        seen.append(await ctx.evaluate({"k": 20}, [5, 1], split="train", want_traces=True))
        full = await ctx.evaluate({"k": 20})
        return StrategyResult({"k": 20}, full.score)

    outcome = await optimize(
        SPEC, TRAIN, VAL, "exact_match", runtime=Runtime(lm), strategy=minibatch, concurrency=4
    )
    assert (outcome.baseline_score, outcome.best_score, outcome.best_call) == (0.0, 1.0, 2)
    assert [o.index for o in seen[0].outcomes] == [5, 1]
    assert [o.outputs["a"] for o in seen[0].outcomes] == [5, 1]
    assert seen[0].outcomes[0].trace[0]["inputs"] == {"q": "train 5"}
    assert outcome.lm_calls == len(lm.requests) == 6 + 2 + 6


async def test_unknown_strategy_names_the_known_ones() -> None:
    known = "known strategies: beacon, bootstrap, mipro, random, simba"
    with pytest.raises(UnknownStrategyError, match=known):
        runner("gepa", InMemoryCallLog(), FakeEvaluate())


def log_keys(log: InMemoryCallLog) -> list[int]:
    return log.numbers()


def same_result(a: RunOutcome, b: RunOutcome) -> bool:
    keys = (
        "status",
        "stop_reason",
        "best_overrides",
        "best_score",
        "baseline_score",
        "usage",
        "evaluations",
        "lm_calls",
        "cached_calls",
        "best_call",
    )
    return all(getattr(a, k) == getattr(b, k) for k in keys)


# -- no example evaluated twice for the same candidate in a run --------------------------------
async def test_an_evaluation_sends_only_the_examples_the_run_has_not_scored() -> None:
    seen: list[Evaluation] = []

    async def halves(ctx: StrategyContext) -> StrategyResult:
        seen.append(await ctx.evaluate({"k": 50}, [1, 2]))
        seen.append(await ctx.evaluate({"k": 50}))  # 1 and 2 known; 0 and 3 failed before
        seen.append(await ctx.evaluate({"k": 50}, [4, 2, 5]))  # all known
        seen.append(await ctx.evaluate({"k": 50}, [1], split="train"))  # another split
        return StrategyResult({"k": 50}, seen[1].score)

    ev = FakeEvaluate()
    outcome = await runner(halves, InMemoryCallLog(), ev).run()
    sent = [(c[0], c[3]) for c in ev.calls]
    assert sent == [(0, tuple(range(6))), (1, (1, 2)), (2, (0, 3, 4, 5)), (4, (1,))]
    full = seen[1]
    assert full.indices == tuple(range(6))
    assert [o.index for o in full.outcomes] == list(range(6))
    assert full.score == pytest.approx(0.5)
    assert full.usage == Usage(4, 1, 28, 8, pytest.approx(0.6))  # what was sent, no more
    assert [o.index for o in seen[2].outcomes] == [4, 2, 5]
    assert (seen[2].usage, seen[2].score) == (Usage(), pytest.approx(0.5))
    assert outcome.best_call == 2  # the composed evaluation is a full-valset score
    assert outcome.evaluations == 5


async def test_traces_are_reused_only_where_they_were_asked_for() -> None:
    seen: list[Evaluation] = []

    async def traced(ctx: StrategyContext) -> StrategyResult:
        seen.append(await ctx.evaluate({"k": 50}, [1], split="train"))
        seen.append(await ctx.evaluate({"k": 50}, [1, 2], split="train", want_traces=True))
        seen.append(await ctx.evaluate({"k": 50}, [1, 2], split="train"))
        return StrategyResult({}, 0.0)

    ev = FakeEvaluate()
    await runner(traced, InMemoryCallLog(), ev).run()
    assert [(c[0], c[3]) for c in ev.calls[1:]] == [(1, (1,)), (2, (1, 2))]
    assert all(o.trace for o in seen[1].outcomes)
    assert seen[2].usage == Usage()
    assert [o.trace for o in seen[2].outcomes] == [(), ()]  # dropped: not asked for


async def test_reuse_follows_call_numbers_not_timing() -> None:
    async def together(ctx: StrategyContext) -> StrategyResult:
        # Call 1 answers last, yet call 2 (same candidate) waits for it and reuses it.
        await asyncio.gather(ctx.evaluate({"k": 50}, [1, 2]), ctx.evaluate({"k": 50}, [2, 4]))
        # A call made but awaited only after a later one is not waited for (no deadlock).
        first = ctx.evaluate({"k": 60}, [1])
        await ctx.evaluate({"k": 60}, [1, 2])
        await first
        return StrategyResult({}, 0.0)

    sent = []
    for delays in ({1: 0.05}, {2: 0.05}, {}):
        log, ev = InMemoryCallLog(), FakeEvaluate(delays=delays)
        outcome = await runner(together, log, ev).run()
        assert outcome.status == "completed"
        sent.append(sorted((c[0], c[3]) for c in ev.calls[1:]))
        # A replay composes alike, from the log alone.
        again = FakeEvaluate()
        replayed = await runner(together, log, again).run()
        assert (again.calls, replayed.usage) == ([], outcome.usage)
    assert sent[0] == sent[1] == sent[2] == [(1, (1, 2)), (2, (4,)), (3, (1,)), (4, (1, 2))]


async def overlapping(ctx: StrategyContext) -> StrategyResult:
    """Two concurrent evaluations of one candidate whose examples overlap."""
    await asyncio.gather(ctx.evaluate({"k": 50}, [1, 2]), ctx.evaluate({"k": 50}, [1, 2, 4, 5]))
    return StrategyResult({}, 0.0)


@pytest.mark.parametrize("crash_at", [1, 2])
async def test_a_crashed_run_resumes_sending_what_the_calm_run_sent(crash_at: int) -> None:
    calm = FakeEvaluate()
    await runner(overlapping, InMemoryCallLog(), calm).run()
    assert [(c[0], c[3]) for c in calm.calls[1:]] == [(1, (1, 2)), (2, (4, 5))]
    log, first = InMemoryCallLog(), FakeEvaluate(crash_at=crash_at)
    with pytest.raises(Crash):
        await runner(overlapping, log, first).run()
    # Call 2 waits for call 1: when call 1 dies, call 2 sends nothing rather than all four.
    assert [c[0] for c in first.calls] == list(range(crash_at + 1))
    resumed = FakeEvaluate()
    outcome = await runner(overlapping, log, resumed).run()
    assert outcome.status == "completed"
    assert [(c[0], c[3]) for c in resumed.calls] == [
        (c[0], c[3]) for c in calm.calls if c[0] >= crash_at
    ]


async def test_a_call_whose_source_failed_fails_too() -> None:
    async def strategy(ctx: StrategyContext) -> StrategyResult:
        first = ctx.evaluate({"k": 50}, [1, 2])
        second = ctx.evaluate({"k": 50}, [1, 2, 4])
        results = await asyncio.gather(first, second, return_exceptions=True)
        assert isinstance(results[0], PortFailed)  # the backend's failure, as the runner says
        assert isinstance(results[1], RuntimeError)
        assert "call 1 failed" in str(results[1])
        return StrategyResult({}, 0.0)

    def fail(call: int) -> None:
        if call == 1:
            raise ValueError("the backend broke")

    ev = FakeEvaluate(on_call=fail)
    outcome = await runner(strategy, InMemoryCallLog(), ev).run()
    assert outcome.status == "completed", outcome.error
    assert [c[0] for c in ev.calls] == [0, 1]  # call 2 sent nothing
