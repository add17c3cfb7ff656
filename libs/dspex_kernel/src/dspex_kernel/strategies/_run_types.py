"""The runner's vocabulary: budgets, the backend and control ports, the run's state and
outcome, and how failures of the ports are told apart from failures of the strategy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from ..errors import DSPExError
from ..lm import LMRequest, LMResponse, Usage
from ._base import Evaluation, Split

Decision = Literal["run", "pause", "cancel"]
Control = Callable[[], Awaitable[Decision]]
"""Asked before every call that is not replayed: run it, wait (pause), or end the run."""
RunStatus = Literal["running", "paused", "completed", "cancelled", "budget_exhausted", "failed"]
EndStatus = Literal["completed", "cancelled", "budget_exhausted", "failed"]


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits of a run; omitted limits do not apply. They are checked before each new call
    (an evaluation or a prompt-model call), so calls already admitted still complete: the
    totals may exceed a limit by what the calls in flight when it was reached cost (an
    evaluation is one call of many LM calls; a strategy may have several in flight)."""

    max_lm_calls: int | None = None
    max_cost_usd: float | None = None
    max_wall_s: float | None = None

    def reached(self, usage: Usage, elapsed_s: float) -> str | None:
        """The name of the first limit reached, if any."""
        if self.max_lm_calls is not None and usage.calls >= self.max_lm_calls:
            return "max_lm_calls"
        if self.max_cost_usd is not None and usage.cost_usd >= self.max_cost_usd:
            return "max_cost_usd"
        if self.max_wall_s is not None and elapsed_s >= self.max_wall_s:
            return "max_wall_s"
        return None


class EvaluateBackend(Protocol):
    """Does the work of one evaluate call (in process, or over the bus)."""

    async def __call__(
        self,
        call: int,
        overrides: Mapping[str, Any],
        split: Split,
        indices: tuple[int, ...],
        want_traces: bool,
        /,
    ) -> Evaluation: ...


class LMBackend(Protocol):
    async def __call__(self, call: int, request: LMRequest, /) -> LMResponse: ...


class ReplayMismatchError(DSPExError):
    """The log's record for a call is not the call the strategy makes now: the strategy is
    not deterministic, or the run's inputs changed."""

    code = "replay_mismatch"


@dataclass
class RunState:
    """Where a run is; passed (as a copy) to ``on_progress``. ``calls`` counts answered
    calls of both kinds; ``replayed`` those served from the log."""

    status: RunStatus = "running"
    calls: int = 0
    evaluations: int = 0
    replayed: int = 0
    usage: Usage = field(default_factory=Usage)
    baseline_score: float | None = None
    best_score: float | None = None
    best_overrides: dict[str, Any] | None = None
    best_call: int | None = None
    elapsed_s: float = 0.0
    last_evaluation: Evaluation | None = None
    message: str | None = None


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended. ``best_call`` is the call that scored the best configuration on the
    full valset (0 = the baseline); ``wall_s`` excludes pauses."""

    status: EndStatus
    stop_reason: str
    best_overrides: Mapping[str, Any] | None
    best_score: float | None
    baseline_score: float | None
    usage: Usage
    evaluations: int
    lm_calls: int
    cached_calls: int
    wall_s: float
    error: Mapping[str, Any] | None = None
    best_call: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


class RunCancelled(Exception):
    """Control said cancel (strategies must not catch it)."""


class PortFailed(Exception):
    """A port (log, backend, control, progress) raised something other than a DSPEx
    error: the run cannot go on here, but a retry elsewhere may. Carries the cause."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


T = TypeVar("T")


async def port(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except DSPExError:
        raise
    except Exception as e:
        raise PortFailed(e) from e
