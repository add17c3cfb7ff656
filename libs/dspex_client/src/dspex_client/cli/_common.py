"""What every command shares: the consoles (people read stderr, scripts read stdout), the
NATS URL option, running a coroutine with the SDK's errors turned into a message and an
exit code, and a connected client."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import ClientError
from ..sdk import DSPExClient

T = TypeVar("T")

# People read stderr (progress, tables of what happened); stdout carries the results a
# script reads, ending with one JSON line where a command promises it.
err = Console(stderr=True)
out = Console(soft_wrap=True)


@dataclass
class Settings:
    """Options of the root command, for the subcommands."""

    nats_url: str | None = None
    user: str | None = None
    password: str | None = None


def settings(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Settings) else Settings()


def print_error(message: str) -> None:
    # Never wrapped (people copy paths out of it) and never read as markup.
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    print_error(message)
    raise typer.Exit(code)


def echo(line: str) -> None:
    """One line on stdout, as it is (rich would wrap long JSON)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro``; a ClientError becomes its message on stderr and its exit code (2 for
    bad input, 1 otherwise); Ctrl-C exits 130. No traceback for what the user can fix."""
    try:
        return asyncio.run(coro)
    except ClientError as e:
        fail(e.message, e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None


@asynccontextmanager
async def client(ctx: typer.Context) -> AsyncIterator[DSPExClient]:
    s = settings(ctx)
    sdk = DSPExClient(
        s.nats_url,
        user=s.user or os.environ.get("DSPEX_NATS_USER"),
        password=s.password or os.environ.get("DSPEX_NATS_PASSWORD"),
    )
    async with sdk:
        yield sdk


def is_file_argument(value: str) -> bool:
    """Whether a FILE_OR_NAME argument names a file: an existing path, or a spec suffix."""
    return os.path.isfile(value) or value.endswith((".yaml", ".yml", ".json"))
