"""Standard modules: each is an async function of a :class:`StageCall` to a
:class:`StageResult`, registered here by its kind name."""

from __future__ import annotations

from ..errors import UnknownModuleError
from ._base import ModuleFn, StageCall, StageResult, TraceEntry, lm_predict
from .best_of_n import best_of_n, refine
from .predict import chain_of_thought, predict, with_reasoning
from .react import react
from .retrieve import retrieve

MODULES: dict[str, ModuleFn] = {
    "predict": predict,
    "chain_of_thought": chain_of_thought,
    "react": react,
    "retrieve": retrieve,
    "best_of_n": best_of_n,
    "refine": refine,
}


def get_module(kind: str) -> ModuleFn:
    try:
        return MODULES[kind]
    except KeyError:
        raise UnknownModuleError(
            f"unknown module kind {kind!r}; known kinds: {', '.join(sorted(MODULES))}"
        ) from None


__all__ = [
    "MODULES",
    "ModuleFn",
    "StageCall",
    "StageResult",
    "TraceEntry",
    "get_module",
    "lm_predict",
    "with_reasoning",
]
