"""The ``dspex`` command line: ``dspex up`` runs the embedded stack; the other commands
talk to a running stack over NATS (``--nats-url``, else ``$DSPEX_NATS_URL``, else the
embedded stack's from ``stack.json``, else ``nats://127.0.0.1:4222``)."""

from __future__ import annotations

from typing import Any

import typer
from typer._click.core import Context as ClickContext
from typer.core import TyperGroup

from ..errors import ClientError
from ._common import Settings, print_error
from .evaluate import evaluate_command
from .events import events_app
from .optimize import optimize_command
from .programs import exec_command, program_app
from .runs import runs_app
from .up import up_command

__all__ = ["app"]


class _Group(TyperGroup):
    """Turns the SDK's errors into a message and an exit code wherever they are raised."""

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except ClientError as e:
            print_error(e.message)
            raise typer.Exit(e.exit_code) from None


app = typer.Typer(
    name="dspex",
    cls=_Group,
    help="DSPEx: run and optimize language-model programs as services.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)


@app.callback()
def main(
    ctx: typer.Context,
    nats_url: str | None = typer.Option(
        None, help="NATS URL of the stack (default: $DSPEX_NATS_URL, else the embedded stack)."
    ),
    user: str | None = typer.Option(None, help="NATS user ($DSPEX_NATS_USER)."),
    password: str | None = typer.Option(None, help="NATS password ($DSPEX_NATS_PASSWORD)."),
) -> None:
    ctx.obj = Settings(nats_url=nats_url, user=user, password=password)


app.command("up")(up_command)


@app.command("demo")
def demo() -> None:
    """Run the main job on a stack of its own (what `make demo` runs).

    Starts the embedded stack with two evaluators, optimizes examples/math_qa with the
    bootstrap strategy and compares both versions on the held-out test set."""
    from ..demo import main as run_demo

    raise typer.Exit(run_demo())


app.add_typer(program_app, name="program")
app.command("exec")(exec_command)
app.command("optimize")(optimize_command)
app.command("evaluate")(evaluate_command)
app.add_typer(runs_app, name="runs")
app.add_typer(events_app, name="events")
