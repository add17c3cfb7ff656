"""Optimizer strategies (teleprompters) by name, and the interface they share: plain async
code that proposes candidate configurations and is told their scores."""

from __future__ import annotations

from ._base import (
    BudgetExhausted,
    EvaluateFn,
    Evaluation,
    ExampleOutcome,
    LMFn,
    Overrides,
    Split,
    Strategy,
    StrategyContext,
    StrategyParamsError,
    StrategyResult,
    UnknownStrategyError,
    scores_own_baseline,
)
from .beacon import beacon
from .bootstrap import bootstrap
from .mipro import mipro
from .random_search import random_search
from .simba import simba

STRATEGIES: dict[str, Strategy] = {
    "beacon": beacon,
    "bootstrap": bootstrap,
    "mipro": mipro,
    "random": random_search,
    "simba": simba,
}


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UnknownStrategyError(
            f"unknown strategy {name!r}; known strategies: {', '.join(sorted(STRATEGIES))}"
        ) from None


__all__ = [
    "STRATEGIES",
    "BudgetExhausted",
    "EvaluateFn",
    "Evaluation",
    "ExampleOutcome",
    "LMFn",
    "Overrides",
    "Split",
    "Strategy",
    "StrategyContext",
    "StrategyParamsError",
    "StrategyResult",
    "UnknownStrategyError",
    "beacon",
    "bootstrap",
    "get_strategy",
    "mipro",
    "random_search",
    "scores_own_baseline",
    "simba",
]
