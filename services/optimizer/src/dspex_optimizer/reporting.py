"""What a run tells the world while it lasts: RunProgress events (after every new call,
and when a pause or resume takes effect) and the replica's gauges of the runs it holds."""

from __future__ import annotations

from dspex_contracts import OptimizeRequested, RunStatus
from dspex_kernel import Usage
from dspex_kernel.optimize import RunState

from .handlers import budget_of, progress_event
from .metrics import HeldRun, OptimizerMetrics
from .ports import ControlState, Publish, RunControl

__all__ = ["ProgressReporter", "RunGauges"]


class RunGauges:
    """The replica's gauges for one held run: starting, then running or paused, and what it
    has spent and found so far."""

    def __init__(self, metrics: OptimizerMetrics | None) -> None:
        self._metrics = metrics
        self._held: HeldRun | None = None
        self.status: str | None = None

    def move(self, status: str | None) -> None:
        metrics = self._metrics
        if metrics is not None and status != self.status:
            metrics.moved(self.status, status)
            if self._held is None and status is not None:
                self._held = metrics.hold()
            elif self._held is not None and status is None:
                metrics.release(self._held)
                self._held = None
        self.status = status

    def progressed(self, state: RunState) -> None:
        if self._held is not None:
            self._held.lm_calls = state.usage.calls
            self._held.cost_usd = state.usage.cost_usd
            self._held.best_score = state.best_score

    def spent(self, usage: Usage, *, evaluation: bool) -> None:
        if self._metrics is not None:
            self._metrics.spent(usage, evaluation=evaluation)

    def ended(self, status: str, reason: str | None, best_score: float | None) -> None:
        if self._metrics is not None:
            self._metrics.run_ended(status, reason, best_score)


class ProgressReporter:
    """Publishes RunProgress: after every new call (the runner's ``on_progress``) and when a
    pause or resume takes effect. The status follows the run's command, so an evaluation
    that lands during a pause does not report the run as running."""

    def __init__(
        self, request: OptimizeRequested, publish: Publish, held: RunGauges, control: RunControl
    ) -> None:
        self.request, self.publish, self.held, self.control = request, publish, held, control
        self.budget = budget_of(request.payload.budget)
        self.state: RunState | None = None

    async def progress(self, state: RunState | None = None, message: str | None = None) -> None:
        if state is not None:
            self.state = state
            self.held.progressed(state)
        paused = await self.control() == "pause"
        self.held.move("paused" if paused else "running")
        status = RunStatus.PAUSED if paused else RunStatus.RUNNING
        if message is None and self.state is not None:
            message = self.state.message
        await self.publish(
            progress_event(self.request, self.state, status, budget=self.budget, message=message)
        )

    async def commanded(self, command: ControlState) -> None:
        if command != "cancel":  # a cancel is reported by the RunCompleted
            await self.progress()
