"""What a program runs against: the LM, a default model, and the tools, retrievers and
reward functions that stages may name. Passed explicitly; the library reads no globals."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import ProgramError, ToolError
from .lm import LM

RewardFn = Callable[[Mapping[str, Any], Mapping[str, Any]], float]
"""``reward(inputs, outputs) -> float`` used by ``best_of_n`` and ``refine``."""


class Retriever(Protocol):
    """Returns up to ``k`` passages for a query, best first."""

    async def search(self, query: str, k: int) -> list[str]: ...


@dataclass(frozen=True)
class Tool:
    """A function a ``react`` stage may call by name. ``fn`` may be sync or async and
    takes keyword arguments; its docstring and signature describe it to the LM."""

    name: str
    fn: Callable[..., Any]
    description: str = ""
    args: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_function(cls, fn: Callable[..., Any], name: str | None = None) -> Tool:
        params = inspect.signature(fn).parameters
        args = {
            p: _annotation_name(params[p].annotation)
            for p in params
            if params[p].kind not in (inspect.Parameter.VAR_POSITIONAL,)
        }
        doc = inspect.getdoc(fn) or ""
        return cls(name or fn.__name__, fn, doc, args)

    async def __call__(self, **kwargs: Any) -> Any:
        unknown = set(kwargs) - set(self.args) if self.args else set()
        if unknown:
            raise ToolError(f"tool {self.name!r} got unknown arguments {sorted(unknown)}")
        try:
            result = self.fn(**kwargs)
            if isinstance(result, Awaitable):
                result = await result
        except (TypeError, ValueError) as e:
            raise ToolError(f"tool {self.name!r} failed: {e}") from e
        return result


def _annotation_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


@dataclass(frozen=True)
class Runtime:
    """Dependencies injected into ``execute`` and ``evaluate``."""

    lm: LM
    model: str | None = None
    tools: Mapping[str, Tool] = field(default_factory=dict)
    retrievers: Mapping[str, Retriever] = field(default_factory=dict)
    rewards: Mapping[str, RewardFn] = field(default_factory=dict)

    def tool(self, name: str) -> Tool:
        try:
            return self.tools[name]
        except KeyError:
            raise ProgramError(
                f"tool {name!r} is not registered (known: {sorted(self.tools)})"
            ) from None

    def retriever(self, name: str) -> Retriever:
        try:
            return self.retrievers[name]
        except KeyError:
            raise ProgramError(
                f"retriever {name!r} is not registered (known: {sorted(self.retrievers)})"
            ) from None

    def reward(self, name: str) -> RewardFn:
        try:
            return self.rewards[name]
        except KeyError:
            raise ProgramError(
                f"reward {name!r} is not registered (known: {sorted(self.rewards)})"
            ) from None


async def gather_limited(limit: int, coros: list[Awaitable[Any]]) -> list[Any]:
    """``asyncio.gather`` with at most ``limit`` awaitables running at once."""
    semaphore = asyncio.Semaphore(max(1, limit))

    async def one(c: Awaitable[Any]) -> Any:
        async with semaphore:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))
