"""``dspex up``: run the embedded stack in the foreground until Ctrl-C or SIGTERM, then
stop every process it started. It restarts nothing by itself: it reports what exits."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from ..processes import Child, StackError
from ..render import stack_table
from ..stack import Stack, StackOptions, wait_forever
from ..stackfile import default_data_dir, read_stack_file
from ._common import err, fail


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def up_command(
    lm: Annotated[
        str | None, typer.Option(help="A litellm model string; omitted: the simulated LM.")
    ] = None,
    lm_api_base: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint of --lm.")
    ] = None,
    nats_url: Annotated[
        str | None, typer.Option(help="Use this NATS (with JetStream) instead of starting one.")
    ] = None,
    nats_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Port of the NATS started (default: 4222 if free, "
            "else any free port; 0: any free port).",
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="The registry's database (SQLAlchemy URL); default: SQLite in DATA_DIR."),
    ] = None,
    evaluators: Annotated[int, typer.Option(min=1, max=64, help="Evaluator replicas.")] = 1,
    kernels: Annotated[int, typer.Option(min=1, max=64, help="Kernel replicas.")] = 1,
    http_base_port: Annotated[
        int | None,
        typer.Option(min=1, max=65000, help="First HTTP port of the services (default: free)."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="JetStream store, database, logs and stack.json (default: $DSPEX_DATA_DIR, "
            "else ~/.dspex)."
        ),
    ] = None,
    sim_latency_ms: Annotated[
        float, typer.Option(min=0.0, help="Simulated LM latency per call, in ms.")
    ] = 0.0,
    ready_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for every service's /readyz.")
    ] = 120.0,
    log_level: Annotated[str, typer.Option(help="Log level of the services.")] = "INFO",
    ui_token: Annotated[
        str | None,
        typer.Option(
            envvar="DSPEX_UI_TOKEN",
            help="Token the run explorer asks for before pausing, resuming or cancelling a "
            "run; without one the explorer is read-only.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the embedded stack in the foreground.

    Starts NATS with JetStream, the simulated LM (unless --lm), the registry, kernel,
    evaluator and optimizer services; Ctrl-C or SIGTERM stops them all."""
    folder = (data_dir or default_data_dir()).expanduser().resolve()
    running = read_stack_file(folder)
    if running is not None:
        fail(
            f"a stack already runs from {folder} (pid {running['pid']}, NATS "
            f"{running['nats_url']}); stop it first or choose another --data-dir"
        )
    options = StackOptions(
        data_dir=folder,
        nats_url=nats_url,
        nats_port=nats_port,
        database_url=database_url,
        lm_model=lm,
        lm_api_base=lm_api_base,
        evaluators=evaluators,
        kernels=kernels,
        http_base_port=http_base_port,
        sim_latency_ms=sim_latency_ms,
        ready_timeout_s=ready_timeout,
        log_level=log_level.upper(),
        kind_env={"registry": {"DSPEX_UI_TOKEN": ui_token}} if ui_token else {},
    )
    stack = Stack(options)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with err.status("starting the DSPEx stack…"):
            stack.start()
        err.print(stack_table(stack.info()))
        lm = "simulated LM" if stack.simulated else "LM"
        err.print(
            f"{lm}: {stack.lm_model} at {stack.lm_api_base or 'the provider API'}; "
            f"registry database: {stack.database_url}",
            highlight=False,
        )
        if stack.explorer_url:
            access = "actions need the token" if ui_token else "read-only (no --ui-token)"
            err.print(f"run explorer: {stack.explorer_url} — {access}", highlight=False)
        err.print(f"ready. DSPEX_NATS_URL={stack.nats_url} — Ctrl-C stops everything.")

        def report(child: Child) -> None:
            err.print(
                f"[yellow]{child.name} exited with code {child.process.returncode}[/] "
                f"(not restarted); see {child.log_path}",
                highlight=False,
            )

        wait_forever(stack, report)
    except StackError as e:
        fail(str(e))
    except KeyboardInterrupt:
        err.print("stopping…")
    finally:
        stack.stop()
        signal.signal(signal.SIGTERM, previous)
    err.print("stopped.")
