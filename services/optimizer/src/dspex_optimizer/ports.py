"""The optimizer's ports: where a run keeps its log, where evaluators' scores land and where
pause/resume/cancel commands are kept. A NATS KV implementation serves replicas; an
in-memory one serves unit tests (``adapters/memory.py``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from dspex_contracts import CandidateScoredPayload, Envelope
from dspex_kernel.optimize import CallLog

ControlState = Literal["run", "pause", "cancel"]
Publish = Callable[[Envelope[Any]], Awaitable[None]]
"""Store an event on its stream (JetStream de-duplicates by its id)."""


@dataclass(frozen=True)
class ControlCommand:
    """A pause, resume or cancel as stored for its run: the latest one wins, except that
    nothing replaces a cancel (see :func:`dspex_optimizer.handlers.supersedes`)."""

    state: ControlState
    at: datetime
    event_id: str


class ScoredResults(ABC):
    """The scored batches of one run, as evaluators answered them; batch ``k`` of call
    ``n``. Stored results never change once written. Close it when the run ends."""

    @abstractmethod
    async def get(self, call: int, batch: int) -> CandidateScoredPayload | None:
        """The result if it has arrived, else None; never waits."""

    @abstractmethod
    async def wait(self, call: int, batch: int) -> CandidateScoredPayload:
        """The result, waiting for it as long as it takes (callers bound it)."""

    @abstractmethod
    async def close(self) -> None:
        """Stop watching for results."""


class RunControl(ABC):
    """The current command of one run, cheap to read often (the runner polls it while the
    run is paused): the runner's ``control``. Close it when the run ends."""

    @abstractmethod
    async def __call__(self) -> ControlState: ...

    @abstractmethod
    async def close(self) -> None:
        """Stop watching for commands."""


class RunStore(ABC):
    """Everything a replica keeps about runs, shared by all replicas."""

    @abstractmethod
    def log(self, run_id: str) -> CallLog:
        """The run's call log (the runner's records)."""

    @abstractmethod
    async def claim(self, run_id: str, request_id: str) -> bool:
        """Tie the run id to one request: True when it is new or already that request's."""

    @abstractmethod
    async def scores(self, run_id: str) -> ScoredResults:
        """The run's scored batches, watched from now on."""

    @abstractmethod
    async def control(self, run_id: str) -> RunControl:
        """The run's command, watched from now on."""

    @abstractmethod
    async def record_scored(self, run_id: str, call: int, batch: int, scored: bytes) -> None:
        """Store an evaluator's answer (the CandidateScored payload as JSON); idempotent."""

    @abstractmethod
    async def command(self, run_id: str, command: ControlCommand) -> ControlState:
        """Apply a command unless a stored one supersedes it; return the resulting state."""
