"""The strategy interface: an optimizer strategy is plain async code that proposes
candidate configurations and is told their scores through two injected functions,
``evaluate`` and ``lm``. It draws randomness only from ``ctx.rng`` (seeded), so the same
seed and the same answers give the same calls in the same order — which is what lets a
crashed run be replayed from its recorded answers.

Rules for strategy code:
- call ``ctx.evaluate`` / ``ctx.lm`` and nothing else that talks to the world;
- use only ``ctx.rng`` (never ``random`` or time) for choices;
- concurrent calls (``asyncio.gather``) are fine: the runner numbers each call before its
  first ``await``, so numbering follows program order;
- let :class:`BudgetExhausted` propagate: the runner ends the run with the best so far.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ..errors import DSPExError, ProgramError
from ..lm import LMRequest, LMResponse, Usage
from ..program import ProgramSpec

Split = Literal["train", "val"]
Overrides = Mapping[str, Any]
"""A candidate: configuration overrides (variable names or ``<stage>.<key>`` paths)."""


class BudgetExhausted(DSPExError):
    """The run reached one of its budgets; ``reason`` names which."""

    code = "budget_exhausted"
    status = 429

    def __init__(self, reason: str) -> None:
        super().__init__(f"budget reached: {reason}")
        self.reason = reason


class UnknownStrategyError(ProgramError):
    """A run named a strategy that is not registered."""

    code = "unknown_strategy"


class StrategyParamsError(ProgramError):
    """A strategy parameter has the wrong type or lies out of range."""

    code = "invalid_strategy_params"


@dataclass(frozen=True, slots=True)
class ExampleOutcome:
    index: int
    score: float
    outputs: Mapping[str, Any]
    error: Mapping[str, Any] | None = None
    trace: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The answer to one ``evaluate`` call: per-example outcomes on ``split`` at
    ``indices``, their mean ``score`` and what the LM calls cost. ``reused`` outcomes came
    from the run's earlier calls of the same candidate and cost nothing here."""

    call: int
    overrides: Mapping[str, Any]
    split: Split
    indices: tuple[int, ...]
    score: float
    outcomes: tuple[ExampleOutcome, ...]
    usage: Usage = field(default_factory=Usage)
    reused: int = 0


class EvaluateFn(Protocol):
    async def __call__(
        self,
        overrides: Overrides,
        indices: Sequence[int] | None = None,
        *,
        split: Split = "val",
        want_traces: bool = False,
    ) -> Evaluation:
        """Score a candidate on ``indices`` of ``split`` (all of it when None)."""
        ...


LMFn = Callable[[LMRequest], Awaitable[LMResponse]]


@dataclass
class StrategyContext:
    """What a strategy may use. ``trainset`` and ``valset`` are the examples themselves
    (strategies build demos from them); scores come only from ``evaluate``. ``baseline``
    is the program's own configuration scored on the full valset (the runner's call 0);
    ``note`` tells people watching the run what the strategy is doing. ``calls_left()``
    is how many LM calls the run's ``max_lm_calls`` budget still allows (None: no such
    budget); read it only while none of the strategy's calls is in flight, so that a
    replay reads the same number at the same point. A strategy registered with
    :func:`scores_own_baseline` gets no ``baseline`` (it scores ``{}`` itself) and may first
    narrow the valset with :meth:`sample_valset`."""

    spec: ProgramSpec
    trainset: Sequence[Mapping[str, Any]]
    valset: Sequence[Mapping[str, Any]]
    evaluate: EvaluateFn
    lm: LMFn
    seed: int
    params: Mapping[str, Any] = field(default_factory=dict)
    baseline: Evaluation | None = None
    on_note: Callable[[str], None] | None = None
    calls_left: Callable[[], int | None] = field(default=lambda: None)
    narrow_valset: Callable[[int], Sequence[Mapping[str, Any]]] | None = None
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def param(self, name: str, default: Any) -> Any:
        return self.params.get(name, default)

    def int_param(self, name: str, default: int, *, low: int = 0) -> int:
        value = self.params.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise StrategyParamsError(f"parameter {name!r} must be an integer >= {low}")
        return value

    def bool_param(self, name: str, default: bool) -> bool:
        value = self.params.get(name, default)
        if not isinstance(value, bool):
            raise StrategyParamsError(f"parameter {name!r} must be true or false")
        return value

    def float_param(self, name: str, default: float, *, low: float, high: float) -> float:
        value = self.params.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise StrategyParamsError(f"parameter {name!r} must be a number")
        if not low <= value <= high:
            raise StrategyParamsError(f"parameter {name!r} must lie in [{low}, {high}]")
        return float(value)

    def sample_valset(self, size: int) -> None:
        """Score on ``size`` examples of the valset from here on, drawn with the run's
        seed: ``valset`` becomes them (in their order), indices refer to them, and a
        full-valset score is a score on them. Only before the run's first valset
        evaluation; a size at least the valset's changes nothing, and so does any size
        where the baseline is already scored (see :func:`scores_own_baseline`) or outside
        a runner: the whole valset is kept, with a note."""
        if size >= len(self.valset):
            return
        if self.narrow_valset is None:
            self.note(f"the whole valset is kept: only a runner narrows it, to {size} examples")
            return
        self.valset = self.narrow_valset(size)

    def note(self, message: str) -> None:
        if self.on_note is not None:
            self.on_note(message)


@dataclass(frozen=True, slots=True)
class StrategyResult:
    """The strategy's choice: the best candidate it found and its full-valset score."""

    overrides: Mapping[str, Any]
    score: float
    details: Mapping[str, Any] = field(default_factory=dict)


Strategy = Callable[[StrategyContext], Awaitable[StrategyResult]]
_OWN_BASELINE: set[Strategy] = set()


def scores_own_baseline(strategy: Strategy) -> Strategy:
    """Mark ``strategy`` as scoring the baseline itself: the runner does not score it first
    (see :class:`StrategyContext`), so the strategy may choose its valset before."""
    _OWN_BASELINE.add(strategy)
    return strategy


def owns_baseline(strategy: Strategy) -> bool:
    return strategy in _OWN_BASELINE
