"""``dspex evaluate``: score a program on a dataset in this process with the kernel library
(no stack needed for a spec file); without ``--lm`` it starts the simulated LM itself."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from dspex_kernel import DSPExError, ProgramSpec

from ..errors import InvalidInput
from ..inputs import load_dataset_file, load_spec_file
from ..local import evaluate_locally
from ..render import json_line
from ._common import client, echo, err, is_file_argument, run


def evaluate_command(
    ctx: typer.Context,
    program: Annotated[
        str,
        typer.Argument(metavar="FILE_OR_NAME", help="A spec file, or a registered program's name."),
    ],
    dataset: Annotated[
        Path, typer.Option(help="Examples with their labels (JSONL or a JSON list).")
    ],
    metric: Annotated[
        str,
        typer.Option(
            help="A built-in metric (exact_match, f1, contains, numeric) or package.module:fn."
        ),
    ],
    version: Annotated[
        int | None, typer.Option("--version", "-v", min=1, help="For a name: its version.")
    ] = None,
    lm: Annotated[
        str | None,
        typer.Option(
            help="A litellm model string for every stage. Omitted: this command starts the "
            "bundled simulated LM itself and the program's own (simulated) models are used."
        ),
    ] = None,
    lm_api_base: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible endpoint of --lm (key: $DSPEX_LM_API_KEY)."),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Examples evaluated at once.")] = 16,
) -> None:
    """Evaluate a program in this process (not on the stack).

    Prints the score; the last line is a JSON object with score, n, n_failed, lm_calls,
    cost_usd, wall_s, ..."""
    examples = load_dataset_file(dataset)
    spec_file = load_spec_file(program) if is_file_argument(program) else None

    async def go() -> dict[str, Any]:
        spec: ProgramSpec
        if spec_file is not None:
            spec = spec_file
        else:
            async with client(ctx) as sdk:
                spec = await sdk.get_spec(program, version)
        try:
            report = await evaluate_locally(
                spec,
                examples,
                metric,
                lm_model=lm,
                lm_api_base=lm_api_base,
                lm_api_key=os.environ.get("DSPEX_LM_API_KEY"),
                concurrency=concurrency,
            )
        except DSPExError as e:
            raise InvalidInput(e.message) from e
        return report.summary() | {"program": spec.name, "version": spec.version}

    summary = run(go())
    err.print(
        f"{summary['program']} v{summary['version']}: score {summary['score']:.3f} on "
        f"{summary['n']} examples ({summary['n_failed']} failed), {summary['lm_calls']} LM "
        f"calls, ${summary['cost_usd']:.4f}, {summary['wall_s']:.1f} s",
        highlight=False,
    )
    echo(json_line(summary))
