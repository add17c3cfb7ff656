"""``dspex events publish SUBJECT FILE``: publish a raw event, validated against the contract
first (a whole envelope, or just its payload); a bad file exits with code 2."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..events import build_event
from ..inputs import load_json_file
from ..render import json_line
from ._common import client, echo, err, run

events_app = typer.Typer(
    help="Publish raw events (validated against the contracts).", no_args_is_help=True
)


@events_app.command("publish")
def publish(
    ctx: typer.Context,
    subject: Annotated[str, typer.Argument(help="e.g. dspex.exec.requested.v1")],
    file: Annotated[Path, typer.Argument(help="A JSON (or YAML) envelope, or just its payload.")],
) -> None:
    """Validate FILE against the contract of SUBJECT, then publish it.

    FILE holds a whole envelope or just its payload; it is stored on its stream with
    Nats-Msg-Id = the event id. A file that does not validate exits with code 2."""
    event = build_event(subject, load_json_file(file))

    async def go() -> None:
        async with client(ctx) as sdk:
            await sdk.publish_event(subject, event.model_dump(mode="json"))

    run(go())
    err.print(f"published {event.TYPE} {event.id} on {subject}", highlight=False)
    echo(json_line({"subject": subject, "type": event.TYPE, "id": event.id}))
