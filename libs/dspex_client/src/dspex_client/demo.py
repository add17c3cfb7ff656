"""``make demo`` (``python -m dspex_client.demo``): the main job from a fresh clone, offline.
Start the embedded stack with two evaluator replicas, register the bundled math_qa program,
optimize it with the bootstrap strategy (train on train.jsonl, score on dev.jsonl), then
score the registered baseline and the optimized version on the held-out test.jsonl,
execute the new version once through the kernel service, and stop the stack."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from dspex_contracts import ExecuteFailed, ProgramRef
from dspex_kernel import ProgramSpec

from .cli.runs import follow
from .errors import ClientError
from .inputs import load_dataset_file, load_spec_file
from .local import evaluate_locally
from .render import json_line, stack_table
from .sdk import DSPExClient
from .stack import Stack, StackError, StackOptions

EXAMPLE = Path("examples") / "math_qa"
METRIC = "numeric"
APPLY_WAIT_S = 30.0

console = Console(stderr=True, highlight=False)


def example_dir() -> Path:
    """``examples/math_qa`` of the repository this package lives in (or of the cwd)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / EXAMPLE / "program.yaml").is_file():
            return parent / EXAMPLE
    if (Path.cwd() / EXAMPLE / "program.yaml").is_file():
        return Path.cwd() / EXAMPLE
    raise FileNotFoundError(f"{EXAMPLE}/program.yaml not found: run the demo from the repository")


async def applied_version(client: DSPExClient, run_id: str) -> int | None:
    """The version the registry registered from the run (it does so on RunCompleted)."""
    deadline = time.monotonic() + APPLY_WAIT_S
    while time.monotonic() < deadline:
        info = await client.get_run(run_id)
        if info.applied_version is not None:
            return info.applied_version
        if info.finished_at is not None and not info.apply:
            return None
        await asyncio.sleep(0.3)
    return None


async def score(spec: ProgramSpec, test: list[dict[str, Any]], api_base: str) -> tuple[float, int]:
    report = await evaluate_locally(spec, test, METRIC, sim_api_base=api_base, concurrency=32)
    return report.score, report.usage.calls


async def run_demo(stack: Stack, folder: Path) -> dict[str, Any]:
    spec = load_spec_file(folder / "program.yaml")
    train = load_dataset_file(folder / "train.jsonl")
    dev = load_dataset_file(folder / "dev.jsonl")
    test = load_dataset_file(folder / "test.jsonl")
    assert stack.lm_api_base is not None
    async with DSPExClient(stack.nats_url) as client:
        name, version = await client.register_program(spec, source=str(EXAMPLE / "program.yaml"))
        console.print(f"1. registered [bold]{name}[/] version {version} (predict, no demos)")
        run_id = await client.start_optimization(
            ProgramRef(name=name, version=version),
            train,
            dev,
            metric=METRIC,
            strategy="bootstrap",
            seed=0,
            apply=True,
        )
        console.print(
            f"2. optimizing: run {run_id}, strategy bootstrap, seed 0, {len(train)} train / "
            f"{len(dev)} dev examples, {stack.options.evaluators} evaluator replicas"
        )
        summary = await follow(client, run_id, timeout_s=600)
        if summary["status"] not in ("completed", "budget_exhausted"):
            raise ClientError(f"the run ended {summary['status']}; see the services' logs")
        new_version = await applied_version(client, run_id)
        if new_version is None:
            raise ClientError(
                f"the registry registered no new version from run {run_id}: its best "
                f"({summary['best_score']}) did not beat the baseline ({summary['baseline_score']})"
            )
        console.print(f"3. the registry registered the best configuration as version {new_version}")
        baseline_spec = await client.get_spec(name, version)
        optimized_spec = await client.get_spec(name, new_version)
        console.print(f"4. scoring both versions on the {len(test)} held-out test examples…")
        (base_score, base_calls), (best_score, best_calls) = await asyncio.gather(
            score(baseline_spec, test, stack.lm_api_base),
            score(optimized_spec, test, stack.lm_api_base),
        )
        console.print(
            f"   version {version} (baseline):  {base_score:.3f}  ({base_calls} LM calls)"
        )
        console.print(
            f"   version {new_version} (optimized): {best_score:.3f}  ({best_calls} LM calls)"
        )
        question = test[0]
        answer = await client.execute(
            name, {"question": question["question"]}, version=new_version, timeout_s=120
        )
        if isinstance(answer, ExecuteFailed):
            raise ClientError(f"executing version {new_version} failed: {answer.payload.error}")
        console.print(
            f"5. executed {name} v{new_version} through the kernel service:\n"
            f"   Q: {question['question']}\n"
            f"   A: {json.dumps(answer.payload.outputs)}  (expected {question['answer']})"
        )
    return {
        "run_id": run_id,
        "program": name,
        "baseline_version": version,
        "optimized_version": new_version,
        "val_baseline_score": summary["baseline_score"],
        "val_best_score": summary["best_score"],
        "test_baseline_score": round(base_score, 4),
        "test_optimized_score": round(best_score, 4),
        "lm_calls": summary["lm_calls"],
        "cost_usd": summary["cost_usd"],
        "run_wall_s": summary["wall_s"],
    }


def main() -> int:
    """Run the demo on a stack of its own in a temporary folder; 0 when the optimized
    version beats the baseline on the held-out set. Logs are kept when it does not."""
    started = time.monotonic()
    data_dir = Path(tempfile.mkdtemp(prefix="dspex-demo-"))
    options = StackOptions(data_dir=data_dir, evaluators=2, nats_port=0, log_level="WARNING")
    better = False
    try:
        folder = example_dir()
        with console.status("starting NATS, the simulated LM, registry, kernel, 2 evaluators…"):
            stack = Stack(options).start()
        try:
            console.print(stack_table(stack.info()))
            result = asyncio.run(run_demo(stack, folder))
        finally:
            with console.status("stopping the stack…"):
                stack.stop()
        better = result["test_optimized_score"] > result["test_baseline_score"]
        verdict = "beats" if better else "does NOT beat"
        console.print(
            f"the optimized program {verdict} the baseline on held-out data: "
            f"{result['test_optimized_score']:.3f} vs {result['test_baseline_score']:.3f} "
            f"({time.monotonic() - started:.0f} s in all)"
        )
        print(json_line(result), flush=True)
        return 0 if better else 1
    except (StackError, ClientError, FileNotFoundError) as e:
        console.print(f"[bold red]demo failed:[/] {e}")
        return 1
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    finally:
        if better:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            console.print(f"logs kept in {data_dir / 'logs'}")


if __name__ == "__main__":
    sys.exit(main())
