"""The runner: drives a strategy, numbering each of its ``evaluate`` / ``lm`` calls and
answering it from the run's log when recorded (replay) or from a backend otherwise, under
control (pause, cancel) and budgets. Same seed + same recorded answers => same run."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from ..cache import cache_key
from ..errors import DSPExError
from ..lm import LMRequest, LMResponse, Usage
from ..program import ProgramSpec
from ._base import (
    BudgetExhausted,
    Evaluation,
    ExampleOutcome,
    Overrides,
    Split,
    Strategy,
    StrategyContext,
    StrategyResult,
    owns_baseline,
)
from ._log import CallLog
from ._pacing import Pacer
from ._records import (
    Record,
    canonical,
    evaluation_from_record,
    evaluation_request,
    evaluation_to_record,
    jsonable,
    lm_response_from_record,
    lm_response_to_record,
)
from ._run_types import (
    Budget,
    Control,
    EndStatus,
    EvaluateBackend,
    LMBackend,
    PortFailed,
    ReplayMismatchError,
    RunCancelled,
    RunOutcome,
    RunState,
    RunStatus,
    port,
)


class Runner:
    """Runs one strategy once (see the module docstring and ARCHITECTURE.md).

    Call 0 is the baseline (no overrides, full valset), unless the strategy scores its own
    (``scores_own_baseline``); it may then narrow the valset to a seeded sample first, and
    maps its indices to the valset's own at this boundary: the log, the backend and
    every score the runner keeps use the valset's numbering. Every later call takes the next
    number when the strategy makes it, before any await, so numbering follows program order
    even under ``asyncio.gather``. A call with a record in ``log`` is answered from it at
    once, without control or budget checks; any other waits while ``control`` says
    "pause", ends the run on "cancel", checks the budget, calls the backend, records the
    answer and reports progress. Wall time counts this runner's own session only, pauses
    excluded: a replayed run's budget starts afresh.

    No example is evaluated twice for the same candidate in a run: an evaluate call first
    waits for the earlier calls of the same overrides and split that the strategy has
    started awaiting (in program order, so a replay reuses alike), takes the outcomes they
    have (without errors; with traces when it wants them) and sends the backend only the
    rest. Its usage, counted against the budget, is what it sent; a call with nothing left
    to send makes no call at all, so neither pause nor budget holds it back.

    Failures: a strategy's own exception or a non-retryable DSPEx error (from a backend
    too) ends the run with status "failed" — a replay would fail the same way. Retryable
    DSPEx errors, and any other exception of the log, the backends, ``control`` or
    ``on_progress``, propagate out of ``run``: the caller retries (redelivery), and the
    replay makes the retry cheap."""

    def __init__(
        self,
        spec: ProgramSpec,
        trainset: Sequence[Mapping[str, Any]],
        valset: Sequence[Mapping[str, Any]],
        *,
        strategy: str | Strategy,
        seed: int,
        params: Mapping[str, Any] | None = None,
        budget: Budget = Budget(),  # noqa: B008 - frozen, shared safely
        log: CallLog,
        evaluate: EvaluateBackend,
        lm: LMBackend,
        on_progress: Callable[[RunState], Awaitable[None]] | None = None,
        control: Control | None = None,
        clock: Callable[[], float] = time.monotonic,
        poll_s: float = 0.2,
    ) -> None:
        from . import get_strategy

        self._strategy = get_strategy(strategy) if isinstance(strategy, str) else strategy
        self._spec, self._trainset, self._valset = spec, trainset, valset
        self._seed, self._params = seed, dict(params or {})
        self._budget, self._log = budget, log
        self._evaluate_backend, self._lm_backend = evaluate, lm
        self._on_progress = on_progress
        self._pacer = Pacer(control, clock, poll_s, self._status_changed)
        self._sizes = {"train": len(trainset), "val": len(valset)}
        self._full_val = tuple(range(len(valset)))
        self._val_sample: tuple[int, ...] | None = None  # strategy index -> valset index
        self._val_position: dict[int, int] = {}  # and back
        self._val_used = False
        self._state = RunState()
        self._next_call = 0
        self._full_calls: dict[str, int] = {}  # canonical overrides -> first full-val call
        self._answers: dict[tuple[str, Split], list[_Answer]] = {}  # evaluate calls by key
        self._callers: set[asyncio.Task[Any]] = set()
        self._main: asyncio.Task[Any] | None = None

    @property
    def state(self) -> RunState:
        return self._state

    async def run(self) -> RunOutcome:
        if self._pacer.started:
            raise RuntimeError("a Runner runs once; make a new one (same log) to replay")
        self._main = asyncio.current_task()
        self._pacer.start()
        status: EndStatus = "completed"
        reason, error, result = "finished", None, None
        try:
            result = await self._drive()
        except BudgetExhausted as e:
            status, reason = "budget_exhausted", e.reason
        except RunCancelled:
            status, reason = "cancelled", "cancelled"
        except PortFailed as e:
            # Infrastructure, not the strategy: the caller's retry (a replay) may succeed.
            raise e.cause from None
        except DSPExError as e:
            if e.retryable:
                raise
            status, reason, error = "failed", "error", e.to_dict()
        except Exception as e:
            message = f"{type(e).__name__}: {e}"
            status, reason = "failed", "error"
            error = {"code": "strategy_error", "message": message, "retryable": False}
        finally:
            self._pacer.closed = True
            await self._stop_callers()
        self._state.status = status
        return self._outcome(status, reason, error, result)

    async def _drive(self) -> StrategyResult:
        own = owns_baseline(self._strategy)
        baseline = None if own else await self._evaluate({})
        ctx = StrategyContext(
            self._spec,
            self._trainset,
            self._valset,
            self._evaluate,
            self._lm,
            self._seed,
            self._params,
            baseline=baseline,
            on_note=self._note,
            calls_left=self._calls_left,
            narrow_valset=self._narrow_valset if own else None,
        )
        return await self._strategy(ctx)

    def _narrow_valset(self, size: int) -> list[Mapping[str, Any]]:
        """``size`` valset examples drawn with the run's seed, in valset order; from here on
        the strategy's valset indices refer to them."""
        if self._val_used or self._val_sample is not None:
            raise RuntimeError("a run's valset can be narrowed once, before its first use")
        if not 0 < size <= len(self._valset):
            raise ValueError(f"size must lie in [1, {len(self._valset)}]")
        draw = random.Random(f"valset-{self._seed}")
        self._val_sample = tuple(sorted(draw.sample(range(len(self._valset)), size)))
        self._val_position = {index: i for i, index in enumerate(self._val_sample)}
        self._full_val = self._val_sample
        self._sizes["val"] = size
        return [self._valset[i] for i in self._val_sample]

    def _calls_left(self) -> int | None:
        limit = self._budget.max_lm_calls
        return None if limit is None else max(0, limit - self._state.usage.calls)

    # -- the two calls a strategy makes ----------------------------------------------------
    def _evaluate(
        self,
        overrides: Overrides,
        indices: Sequence[int] | None = None,
        *,
        split: Split = "val",
        want_traces: bool = False,
    ) -> Coroutine[Any, Any, Evaluation]:
        n = self._take_number()  # now, not at the first await: numbering = program order
        if split not in self._sizes:
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        size = self._sizes[split]
        chosen = tuple(range(size)) if indices is None else tuple(int(i) for i in indices)
        if any(not 0 <= i < size for i in chosen):
            raise ValueError(f"indices must lie in [0, {size}) for split {split!r}")
        narrowed = self._val_sample if split == "val" else None
        self._val_used |= split == "val"
        if narrowed is not None:
            chosen = tuple(narrowed[i] for i in chosen)
        earlier = self._answers.setdefault((canonical(overrides), split), [])
        answer = _Answer(n, want_traces, asyncio.get_running_loop().create_future())
        call = self._evaluate_call(n, dict(overrides), split, chosen, answer, list(earlier))
        earlier.append(answer)
        return call

    def _lm(self, request: LMRequest) -> Coroutine[Any, Any, LMResponse]:
        return self._lm_call(self._take_number(), request)

    async def _evaluate_call(
        self,
        n: int,
        overrides: dict[str, Any],
        split: Split,
        idx: tuple[int, ...],
        mine: _Answer,
        earlier: Sequence[_Answer],
    ) -> Evaluation:
        # Before the first await: the earlier calls to reuse are those already started, so
        # program order alone decides (whatever the log's or the backend's timing).
        mine.started, traces = True, mine.traced
        sources = [a for a in earlier if a.started and (a.traced or not traces)]
        outcomes: tuple[ExampleOutcome, ...] | None = None
        try:
            request = _json(evaluation_request(overrides, split, idx, traces))
            with self._caller():
                record = await port(self._log.get(n))
                fresh = record is None
                if record is None:
                    known = await _known(n, sources, set(idx), traces)
                    answer = await self._answer(n, overrides, split, idx, traces, known)
                    record = _json({**evaluation_to_record(answer), **request, "call": n})
                    await self._record(n, record)
                else:
                    self._check_replay(n, record, request)
                evaluation = evaluation_from_record(record)
                outcomes = evaluation.outcomes
                self._account(evaluation.usage, fresh)
                self._account_evaluation(evaluation)
        finally:
            mine.done.set_result(outcomes)  # None: the call failed
        if fresh:
            await self._progress()
        return self._for_strategy(evaluation)

    def _for_strategy(self, evaluation: Evaluation) -> Evaluation:
        """``evaluation`` in the strategy's numbering of a narrowed valset."""
        if evaluation.split != "val" or self._val_sample is None:
            return evaluation
        position = self._val_position
        outcomes = tuple(
            dataclasses.replace(o, index=position[o.index]) for o in evaluation.outcomes
        )
        indices = tuple(position[i] for i in evaluation.indices)
        return dataclasses.replace(evaluation, indices=indices, outcomes=outcomes)

    async def _answer(
        self,
        n: int,
        overrides: dict[str, Any],
        split: Split,
        idx: tuple[int, ...],
        traces: bool,
        known: Mapping[int, ExampleOutcome],
    ) -> Evaluation:
        """The backend's answer for the examples not ``known``, completed with those."""
        missing = tuple(i for i in idx if i not in known)
        usage, by_index = Usage(), dict(known)
        if missing or not known:
            await self._admit()
            sent = await port(self._evaluate_backend(n, overrides, split, missing, traces))
            if not known:
                return sent  # nothing reused: the backend's own answer, as it was
            usage = sent.usage
            by_index.update((o.index, o) for o in sent.outcomes)
        outcomes = tuple(by_index[i] for i in idx)
        score = sum(o.score for o in outcomes) / len(outcomes)
        reused = len(idx) - len(missing)
        return Evaluation(n, overrides, split, idx, score, outcomes, usage, reused)

    async def _lm_call(self, n: int, request: LMRequest) -> LMResponse:
        key = cache_key(request)
        with self._caller():
            record = await port(self._log.get(n))
            fresh = record is None
            if record is None:
                await self._admit()
                answer = await port(self._lm_backend(n, request))
                record = _json(lm_response_to_record(n, key, answer))
                await self._record(n, record)
            else:
                self._check_replay(n, record, {"kind": "lm", "request_key": key})
            response = lm_response_from_record(record)
            self._account(response.usage, fresh)
        if fresh:
            await self._progress()
        return response

    # -- machinery -------------------------------------------------------------------------
    def _take_number(self) -> int:
        n = self._next_call
        self._next_call += 1
        return n

    @contextmanager
    def _caller(self) -> Iterator[None]:
        # Remember the task making the call, so that calls a finished strategy left running
        # (e.g. siblings of a failed gather) are cancelled instead of outliving the run.
        task = asyncio.current_task()
        if task is not None and task is not self._main:
            self._callers.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._callers.discard(task)

    async def _stop_callers(self) -> None:
        pending = [t for t in self._callers if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _admit(self) -> None:
        await self._pacer.wait_for_go()
        reason = self._budget.reached(self._state.usage, self._pacer.elapsed())
        if reason is not None:
            raise BudgetExhausted(reason)

    async def _record(self, n: int, record: Record) -> None:
        if self._pacer.closed:
            raise RunCancelled()
        await port(self._log.put(n, record))

    def _check_replay(self, n: int, record: Mapping[str, Any], expected: Record) -> None:
        for key, value in expected.items():
            if record.get(key) != value:
                raise ReplayMismatchError(
                    f"call {n}: the log records a call with another {key} than the strategy "
                    f"makes now ({record.get(key)!r} != {value!r}); the strategy is not "
                    "deterministic or the run's inputs changed"
                )

    def _account(self, usage: Usage, fresh: bool) -> None:
        state = self._state
        state.calls += 1
        state.replayed += 0 if fresh else 1
        state.usage = state.usage + usage

    def _account_evaluation(self, ev: Evaluation) -> None:
        state = self._state
        state.evaluations += 1
        state.last_evaluation = ev
        if ev.split != "val" or ev.indices != self._full_val:
            return  # only full-valset scores are comparable
        self._full_calls.setdefault(canonical(ev.overrides), ev.call)
        if state.baseline_score is None and not ev.overrides:
            state.baseline_score = ev.score
        best = state.best_score
        # Ties go to the earlier call, whatever order concurrent answers arrive in.
        earlier = state.best_call is not None and ev.call < state.best_call
        if best is None or ev.score > best or (ev.score == best and earlier):
            state.best_score, state.best_call = ev.score, ev.call
            state.best_overrides = dict(ev.overrides)

    async def _progress(self) -> None:
        if self._on_progress is None or self._pacer.closed:
            return
        self._state.elapsed_s = self._pacer.elapsed()
        await port(self._on_progress(dataclasses.replace(self._state)))

    async def _status_changed(self, status: RunStatus) -> None:
        self._state.status = status
        await self._progress()

    def _note(self, message: str) -> None:
        self._state.message = message

    def _outcome(
        self,
        status: EndStatus,
        reason: str,
        error: Mapping[str, Any] | None,
        result: StrategyResult | None,
    ) -> RunOutcome:
        state = self._state
        best_overrides, best_score = state.best_overrides, state.best_score
        best_call = state.best_call
        details: Mapping[str, Any] = {}
        if result is not None:
            best_overrides = jsonable(dict(result.overrides))
            best_score, details = result.score, result.details
            best_call = self._full_calls.get(canonical(result.overrides))
        return RunOutcome(
            status=status,
            stop_reason=reason,
            best_overrides=best_overrides,
            best_score=best_score,
            baseline_score=state.baseline_score,
            usage=state.usage,
            evaluations=state.evaluations,
            lm_calls=state.usage.calls,
            cached_calls=state.usage.cached_calls,
            wall_s=self._pacer.elapsed(),
            error=error,
            best_call=best_call,
            details=details,
        )


@dataclasses.dataclass(slots=True)
class _Answer:
    """An evaluate call's outcomes, once it is answered, for later calls of the same
    overrides and split. ``started``: the strategy awaits the call (its coroutine runs)."""

    call: int
    traced: bool
    done: asyncio.Future[tuple[ExampleOutcome, ...] | None]
    started: bool = False


async def _known(
    n: int, sources: Sequence[_Answer], wanted: set[int], traces: bool
) -> dict[int, ExampleOutcome]:
    """The outcomes of ``wanted`` examples that the ``sources`` (earlier calls, awaited)
    have: the earliest call's, without errors, their traces dropped unless ``traces``.
    A source that failed fails call ``n`` too: sending its examples instead would make
    what call ``n`` sends depend on that failure, and a retry of the run, replaying the
    source, would send something else under the same call number."""
    known: dict[int, ExampleOutcome] = {}
    for source in sources:
        outcomes = await asyncio.shield(source.done)
        if outcomes is None:
            raise RuntimeError(f"call {source.call} failed; call {n} would reuse its answers")
        for o in outcomes:
            if o.index in wanted and o.error is None and o.index not in known:
                known[o.index] = o if traces else dataclasses.replace(o, trace=())
    return known


def _json(record: Record) -> Record:
    # What a replay reads back is JSON; the first run must see exactly the same values.
    out: Record = json.loads(json.dumps(jsonable(record), allow_nan=False))
    return out
