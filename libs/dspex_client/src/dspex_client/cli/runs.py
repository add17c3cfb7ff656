"""``dspex runs list|show|watch|pause|resume|cancel``: optimization runs as the registry
records them, followed live from their events, and steered by command events."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from dspex_contracts import Budget, RunCompleted, RunProgress, RunStatus
from dspex_contracts.rpc import RunInfo

from ..errors import InvalidInput
from ..render import RunProgressView, json_line, run_summary, runs_table
from ..sdk import DSPExClient
from ._common import client, echo, err, out, run

runs_app = typer.Typer(
    help="List, follow, pause, resume and cancel optimization runs.", no_args_is_help=True
)
RunIdArg = Annotated[str, typer.Argument(metavar="RUN", help="The run id.")]


async def follow(
    sdk: DSPExClient, run_id: str, *, budget: Budget | None = None, timeout_s: float | None = None
) -> dict[str, Any]:
    """Show the run's progress bar until it ends; the summary of its RunCompleted."""
    last: RunProgress | RunCompleted | None = None
    with RunProgressView(err, run_id, budget) as view:
        async for event in sdk.watch_run(run_id, timeout_s=timeout_s):
            view.update(event)
            last = event
    summary = run_summary(run_id, last, status="unknown")
    if isinstance(last, RunCompleted):
        p = last.payload
        reason = f" ({p.stop_reason})" if p.stop_reason else ""
        applied = f"; registered as version {p.applied_version}" if p.applied_version else ""
        size = (p.details or {}).get("valset_size")
        on = f" (on {size} valset examples)" if isinstance(size, int) else ""
        err.print(
            f"run {run_id} {p.status.value}{reason}: baseline {summary['baseline_score']}, "
            f"best {summary['best_score']}{on}, {p.usage.calls} LM calls, "
            f"${p.usage.cost_usd:.4f}, {p.wall_s:.1f} s{applied}",
            highlight=False,
        )
        if p.error is not None:
            err.print(f"[red]error ({p.error.code}):[/] {p.error.message}", highlight=False)
    return summary


def exit_code(summary: dict[str, Any]) -> int:
    """0 for a run that ended normally (completed, out of budget, cancelled), 1 if failed."""
    return 1 if summary["status"] == RunStatus.FAILED.value else 0


@runs_app.command("list")
def list_runs(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only runs in this status.")] = None,
    program: Annotated[str | None, typer.Option(help="Only runs of this program.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Most runs shown, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, not a table.")] = False,
) -> None:
    """Runs, newest first."""
    if status is not None and status not in {s.value for s in RunStatus}:
        raise InvalidInput(f"--status must be one of {[s.value for s in RunStatus]}")

    async def go() -> list[RunInfo]:
        async with client(ctx) as sdk:
            return await sdk.list_runs(status=status, program=program, limit=limit)

    runs = run(go())
    if as_json:
        echo(json.dumps([r.model_dump(mode="json") for r in runs]))
    else:
        out.print(runs_table(runs))


@runs_app.command("show")
def show(
    ctx: typer.Context,
    run_id: RunIdArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON.")] = False,
) -> None:
    """Show one run: request, status, scores, usage.

    The last line is its JSON summary."""

    async def go() -> RunInfo:
        async with client(ctx) as sdk:
            return await sdk.get_run(run_id)

    info = run(go())
    if as_json:
        echo(info.model_dump_json())
        return
    table = Table(show_header=False, title=f"run {run_id}", title_justify="left")
    for key, value in info.model_dump(mode="json").items():
        if value not in (None, {}, []):
            shown = json.dumps(value) if isinstance(value, dict | list) else str(value)
            table.add_row(key, shown)
    err.print(table)
    echo(json_line(run_summary(run_id, info)))


@runs_app.command("watch")
def watch(
    ctx: typer.Context,
    run_id: RunIdArg,
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds.")] = None,
) -> None:
    """Follow a run from its beginning until it ends.

    The last line is its JSON summary."""

    async def go() -> dict[str, Any]:
        async with client(ctx) as sdk:
            await sdk.get_run(run_id)  # an unknown run is an error, not an endless wait
            return await follow(sdk, run_id, timeout_s=timeout)

    summary = run(go())
    echo(json_line(summary))
    raise typer.Exit(exit_code(summary))


def _command(ctx: typer.Context, action: str, run_id: str, reason: str | None) -> None:
    async def go() -> None:
        async with client(ctx) as sdk:
            await getattr(sdk, action)(run_id, reason=reason)

    run(go())
    err.print(f"{action} requested for run {run_id}")
    echo(json_line({"run_id": run_id, "requested": action}))


Reason = Annotated[str | None, typer.Option(help="Why, for the run's history.")]


@runs_app.command("pause")
def pause(ctx: typer.Context, run_id: RunIdArg, reason: Reason = None) -> None:
    """Pause a run: its owner stops issuing calls and keeps the run."""
    _command(ctx, "pause", run_id, reason)


@runs_app.command("resume")
def resume(ctx: typer.Context, run_id: RunIdArg, reason: Reason = None) -> None:
    """Resume a paused run."""
    _command(ctx, "resume", run_id, reason)


@runs_app.command("cancel")
def cancel(ctx: typer.Context, run_id: RunIdArg, reason: Reason = None) -> None:
    """Cancel a run: it ends as cancelled with its best so far."""
    _command(ctx, "cancel", run_id, reason)
