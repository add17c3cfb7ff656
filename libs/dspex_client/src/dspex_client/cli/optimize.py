"""``dspex optimize``: request an optimization run (registering a spec file first), and with
``--watch`` follow it to the end. The last line printed is the run's JSON summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from dspex_contracts import Budget, ProgramRef

from ..bus import validation_message
from ..errors import InvalidInput
from ..inputs import load_dataset_file, load_spec_file, parse_pairs, split_trainset
from ..render import json_line, run_summary
from ._common import client, echo, err, is_file_argument, run
from .runs import exit_code, follow


def make_budget(max_lm_calls: int | None, max_cost: float | None, max_wall: float | None) -> Budget:
    try:
        return Budget(max_lm_calls=max_lm_calls, max_cost_usd=max_cost, max_wall_s=max_wall)
    except ValidationError as e:
        raise InvalidInput(f"invalid budget:\n{validation_message(e)}") from None


def optimize_command(
    ctx: typer.Context,
    program: Annotated[
        str,
        typer.Argument(
            metavar="FILE_OR_NAME",
            help="A spec file (registered first, then optimized) or a registered program's "
            "name (its latest version).",
        ),
    ],
    trainset: Annotated[Path, typer.Option(help="Training examples (JSONL or a JSON list).")],
    metric: Annotated[
        str,
        typer.Option(
            help="A built-in metric (exact_match, f1, contains, numeric) or one the operator "
            "allow-listed."
        ),
    ],
    valset: Annotated[
        Path | None,
        typer.Option(
            help="Validation examples the candidates are scored on. Omitted: the trainset is "
            "shuffled with --seed and split in half: one half to train, one to validate."
        ),
    ] = None,
    strategy: Annotated[
        str, typer.Option(help="Optimizer strategy (bootstrap, random, ...).")
    ] = "bootstrap",
    max_lm_calls: Annotated[int | None, typer.Option(help="Budget: most LM calls.")] = None,
    max_cost: Annotated[float | None, typer.Option(help="Budget: most US dollars.")] = None,
    max_wall: Annotated[
        float | None, typer.Option(help="Budget: most seconds, pauses excluded.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random choice of the run.")] = 0,
    lm: Annotated[
        str | None, typer.Option(help="Model of the program's LM calls (a litellm string).")
    ] = None,
    apply: Annotated[
        bool,
        typer.Option(help="Register the best configuration as a new version if it wins."),
    ] = False,
    watch: Annotated[
        bool, typer.Option(help="Show a live progress bar until the run ends.")
    ] = False,
    params: Annotated[
        list[str] | None,
        typer.Option(
            "--param", "-p", help="A strategy setting as KEY=VALUE (VALUE is JSON if it parses)."
        ),
    ] = None,
    run_id: Annotated[
        str | None, typer.Option(help="Choose the run id (default: a new one).")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="With --watch: give up after this many seconds.")
    ] = None,
) -> None:
    """Start an optimization run (and follow it with --watch).

    The last line printed is one JSON object: run_id, status, baseline_score, best_score
    (0..1), lm_calls, cost_usd, wall_s."""
    budget = make_budget(max_lm_calls, max_cost, max_wall)
    strategy_params = parse_pairs(params or [], option="--param")
    spec = load_spec_file(program) if is_file_argument(program) else None
    train = load_dataset_file(trainset)
    if valset is not None:
        val = load_dataset_file(valset)
    else:
        train, val = split_trainset(train, seed)
        err.print(
            f"no --valset: the trainset is split (seed {seed}) into {len(train)} train and "
            f"{len(val)} validation examples"
        )

    async def go() -> dict[str, Any]:
        async with client(ctx) as sdk:
            if spec is not None:
                name, version = await sdk.register_program(spec, source=program)
                err.print(f"registered [bold]{name}[/] version {version}")
                ref = ProgramRef(name=name, version=version)
            else:
                ref = ProgramRef(name=program)
            started = await sdk.start_optimization(
                ref,
                train,
                val,
                metric=metric,
                strategy=strategy,
                seed=seed,
                params=strategy_params,
                budget=budget,
                lm=lm,
                apply=apply,
                run_id=run_id,
            )
            err.print(
                f"run [bold]{started}[/] requested ({strategy}, seed {seed}); "
                f"`dspex runs watch {started}` follows it from anywhere"
            )
            if not watch:
                return run_summary(started, None)
            return await follow(sdk, started, budget=budget, timeout_s=timeout)

    summary = run(go())
    echo(json_line(summary))
    raise typer.Exit(exit_code(summary))
