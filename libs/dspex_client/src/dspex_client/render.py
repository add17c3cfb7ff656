"""How the CLI shows things: rich tables for people (the stack, programs, runs), a live
progress bar for a run, and the one-line JSON summaries that scripts read from the last
line of output."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Self

from rich.console import Console, RenderableType
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from dspex_contracts import Budget, RunCompleted, RunProgress
from dspex_contracts.rpc import ProgramSummary, RunInfo

__all__ = [
    "RunProgressView",
    "json_line",
    "programs_table",
    "run_summary",
    "runs_table",
    "stack_table",
]


def json_line(data: Mapping[str, Any]) -> str:
    """One line of JSON (never wrapped, whatever the terminal width)."""
    return json.dumps(dict(data), separators=(", ", ": "), default=str)


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def run_summary(
    run_id: str, event: RunCompleted | RunProgress | RunInfo | None, *, status: str = "queued"
) -> dict[str, Any]:
    """The summary ``dspex optimize`` and ``dspex runs watch`` end with."""
    out: dict[str, Any] = {
        "run_id": run_id,
        "status": status,
        "baseline_score": None,
        "best_score": None,
        "lm_calls": 0,
        "cost_usd": 0.0,
        "wall_s": 0.0,
    }
    if isinstance(event, RunCompleted):
        p = event.payload
        out.update(
            status=p.status.value,
            baseline_score=p.baseline_score,
            best_score=p.best_score,
            lm_calls=p.usage.calls,
            cost_usd=round(p.usage.cost_usd, 8),
            wall_s=round(p.wall_s, 3),
        )
    elif isinstance(event, RunProgress):
        q = event.payload
        out.update(
            status=q.status.value,
            baseline_score=q.baseline_score,
            best_score=q.best_score,
            lm_calls=q.lm_calls,
            cost_usd=round(q.cost_usd, 8),
            wall_s=round(q.elapsed_s, 3),
        )
    elif isinstance(event, RunInfo):
        out.update(
            status=event.status.value,
            baseline_score=event.baseline_score,
            best_score=event.best_score,
            lm_calls=event.lm_calls,
            cost_usd=round(event.cost_usd, 8),
            wall_s=round(event.wall_s or 0.0, 3),
        )
    return out


def stack_table(info: Mapping[str, Any]) -> Table:
    """What runs where, from :meth:`Stack.info`."""
    table = Table(title=f"DSPEx stack (data: {info['data_dir']})", title_justify="left")
    table.add_column("process")
    table.add_column("pid", justify="right")
    table.add_column("serves")
    table.add_column("log")
    data_dir = str(info["data_dir"]).rstrip("/") + "/"
    for proc in info["processes"]:
        log = str(proc["log"]).removeprefix(data_dir)
        table.add_row(proc["name"], str(proc["pid"]), proc["url"], log)
    if not any(p["kind"] == "nats" for p in info["processes"]):
        table.add_row("nats (external)", "-", info["nats_url"], "-")
    if not info.get("simulated_lm"):
        table.add_row(f"LM {info['lm_model']}", "-", info.get("lm_api_base") or "provider", "-")
    return table


def programs_table(programs: Iterable[ProgramSummary]) -> Table:
    table = Table(title="programs", title_justify="left")
    for column in ("name", "latest", "versions", "score", "updated"):
        table.add_column(column)
    for p in programs:
        table.add_row(
            p.name,
            str(p.latest_version),
            str(p.versions),
            _score(p.score),
            p.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    return table


def runs_table(runs: Iterable[RunInfo]) -> Table:
    table = Table(title="runs", title_justify="left")
    for column in ("run", "status", "program", "strategy", "baseline", "best", "calls", "cost $"):
        table.add_column(column)
    for r in runs:
        program = f"{r.program_name or '?'} v{r.program_version or '?'}"
        table.add_row(
            r.run_id,
            r.status.value,
            program,
            r.strategy or "-",
            _score(r.baseline_score),
            _score(r.best_score),
            str(r.lm_calls),
            f"{r.cost_usd:.4f}",
        )
    return table


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


class _HeaderedProgress(Progress):
    """A progress bar with a line of text above it (rich's documented extension point)."""

    header: Text = Text()

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.header
        yield self.make_tasks_table(self.tasks)


class RunProgressView:
    """A live view of one run: a line with its status and scores, and a bar with LM calls,
    cost and ETA. The bar fills with elapsed / (elapsed + ETA), or with the spent share of
    an LM-call or cost budget when that is further along."""

    def __init__(self, console: Console, run_id: str, budget: Budget | None = None) -> None:
        self.budget = budget or Budget()
        self.run_id = run_id
        self.progress = _HeaderedProgress(
            SpinnerColumn(),
            BarColumn(bar_width=32),
            TextColumn("{task.fields[calls]} LM calls"),
            TextColumn("${task.fields[cost]}"),
            TextColumn("ETA {task.fields[eta]}"),
            console=console,
            transient=False,
        )
        self.task: TaskID = self.progress.add_task(
            "run", total=None, calls=0, cost="0.0000", eta="-"
        )
        self._header("queued", None, None)

    def _header(self, status: str, best: float | None, baseline: float | None) -> None:
        self.progress.header = Text.assemble(
            ("run ", "dim"),
            (self.run_id, "bold"),
            f"  {status}  best {_score(best)} (baseline {_score(baseline)})",
        )

    def _fraction(self, p: RunProgress) -> float | None:
        q = p.payload
        shares = []
        if q.eta_s is not None and q.elapsed_s + q.eta_s > 0:
            shares.append(q.elapsed_s / (q.elapsed_s + q.eta_s))
        if self.budget.max_lm_calls:
            shares.append(q.lm_calls / self.budget.max_lm_calls)
        if self.budget.max_cost_usd:
            shares.append(q.cost_usd / self.budget.max_cost_usd)
        return min(1.0, max(shares)) if shares else None

    def update(self, event: RunProgress | RunCompleted) -> None:
        if isinstance(event, RunCompleted):
            p = event.payload
            self._header(p.status.value, p.best_score, p.baseline_score)
            self.progress.update(
                self.task,
                total=1.0,
                completed=1.0,
                calls=p.usage.calls,
                cost=f"{p.usage.cost_usd:.4f}",
                eta="0:00",
            )
            return
        q = event.payload
        self._header(q.status.value, q.best_score, q.baseline_score)
        fraction = self._fraction(event)
        self.progress.update(
            self.task,
            total=None if fraction is None else 1.0,
            completed=fraction or 0.0,
            calls=q.lm_calls,
            cost=f"{q.cost_usd:.4f}",
            eta=_eta(q.eta_s),
        )

    def __enter__(self) -> Self:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()
