"""``dspex program register|list|show`` and ``dspex exec``: the registry's programs and
running one through a kernel replica."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from dspex_contracts import ExecuteCompleted

from ..inputs import load_spec_file, parse_pairs
from ..render import json_line, programs_table
from ..sdk import ExecuteAnswer
from ._common import client, echo, err, fail, is_file_argument, out, run

program_app = typer.Typer(help="Register and inspect programs.", no_args_is_help=True)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Version = Annotated[
    int | None, typer.Option("--version", "-v", min=1, help="Program version (default: latest).")
]


@program_app.command("register")
def register(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A ProgramSpec file (.yaml, .yml or .json).")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the registry.")] = 30.0,
) -> None:
    """Register a program (a new version when its name exists).

    The minimal form is a name and a list of stages."""
    spec = load_spec_file(file)

    async def go() -> tuple[str, int]:
        async with client(ctx) as sdk:
            return await sdk.register_program(spec, source=str(file), timeout_s=timeout)

    name, version = run(go())
    err.print(f"registered [bold]{name}[/] version {version}")
    echo(json_line({"name": name, "version": version}))


@program_app.command("list")
def list_programs(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Every registered program with its latest version."""

    async def go() -> list[dict[str, Any]]:
        async with client(ctx) as sdk:
            programs = await sdk.list_programs()
        if not as_json:
            out.print(programs_table(programs))
        return [p.model_dump(mode="json") for p in programs]

    rows = run(go())
    if as_json:
        echo(json.dumps(rows))


@program_app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Program name.")],
    version: Version = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of YAML.")] = False,
) -> None:
    """Show one version of a program: its spec and where it came from."""

    async def go() -> dict[str, Any]:
        async with client(ctx) as sdk:
            info = await sdk.get_program(name, version)
        return info.model_dump(mode="json")

    info = run(go())
    if as_json:
        echo(json.dumps(info))
        return
    spec = info.pop("spec")
    header = {k: v for k, v in info.items() if v is not None}
    echo(yaml.safe_dump(header, sort_keys=False).rstrip())
    echo("spec:")
    echo(textwrap.indent(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), "  ").rstrip())


def exec_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A registered program's name, or a spec file.")],
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="An input as KEY=VALUE (VALUE is JSON when it parses)."),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--override", "-o", help="A configuration override as KEY=VALUE."),
    ] = None,
    version: Version = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 60.0,
) -> None:
    """Execute a program once through a kernel replica and print its outputs (JSON)."""
    values = parse_pairs(inputs or [], option="--input")
    changes = parse_pairs(overrides or [], option="--override")
    program = load_spec_file(name) if is_file_argument(name) else name

    async def go() -> ExecuteAnswer:
        async with client(ctx) as sdk:
            return await sdk.execute(program, values, changes, version=version, timeout_s=timeout)

    answer = run(go())
    if isinstance(answer, ExecuteCompleted):
        p = answer.payload
        err.print(
            f"{p.program.name} v{p.program.version}: {p.usage.calls} LM call(s), "
            f"{p.latency_s:.2f} s",
            highlight=False,
        )
        echo(json.dumps(p.outputs, ensure_ascii=False))
        return
    error = answer.payload.error
    fail(f"execution failed ({error.code}): {error.message}")
