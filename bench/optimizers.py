"""DSPEx strategies beside the DSPy optimizers they follow, on the same task and split.

math_qa (examples/math_qa: 300 train, 100 dev, 200 held-out test), the program as
program.yaml writes it (``question -> answer: int``, "Answer the question.", sim-base at
temperature 0), the simulated LM over HTTP through litellm on both sides. Each side runs
in a fresh process with a fresh simulated LM, so that neither reuses the other's cache;
each side keeps the in-memory LM cache a user would have. "LM calls" are the HTTP requests
the simulated LM received during the optimization (the test evaluation is not counted).

| DSPEx | DSPy 3.4.1 |
|---|---|
| bootstrap | BootstrapFewShotWithRandomSearch(4 bootstrapped, 4 labeled, 6 candidate programs) |
| simba | SIMBA (defaults: bsize 32, 6 candidates, 8 steps, 4 demos; trainset only) |
| mipro | MIPROv2(auto="light") |
| beacon | BootstrapFewShotWithOptuna (16 trials; DSPy's Bayesian optimizer) |

For ``simba`` and ``mipro`` DSPEx also runs with a budget of half of DSPy's calls
(``max_lm_calls``, cache hits included), to see whether it reaches DSPy's score with them.

    .venv/bin/python bench/optimizers.py [--strategies bootstrap,simba,mipro,beacon]
                                         [--latency-ms 0] [--seed 0] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "math_qa"
HALF_BUDGET = {"simba", "mipro"}
DSPY_NAMES = {
    "bootstrap": "BootstrapFewShotWithRandomSearch",
    "simba": "SIMBA",
    "mipro": "MIPROv2 light",
    "beacon": "BootstrapFewShotWithOptuna",
}


def rows(name: str) -> list[dict[str, Any]]:
    lines = (EXAMPLE / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# -- one side, in its own process ----------------------------------------------------------
def run_dspy(strategy: str, latency_ms: int, seed: int, threads: int) -> dict[str, Any]:
    os.environ["DSPY_CACHEDIR"] = tempfile.mkdtemp(prefix="dspy-cache-")
    import dspy

    from dspex_simlm.testing import SimLMProcess, get_stats

    def examples(name: str) -> list[Any]:
        return [
            dspy.Example(question=r["question"], answer=r["answer"]).with_inputs("question")
            for r in rows(name)
        ]

    class Solve(dspy.Signature):
        """Answer the question."""

        question: str = dspy.InputField(desc="A short arithmetic word problem.")
        answer: int = dspy.OutputField(desc="The final numeric answer.")

    def metric(example: Any, prediction: Any, trace: Any = None) -> float:
        try:
            return float(int(prediction.answer) == int(example.answer))
        except (TypeError, ValueError, AttributeError):
            return 0.0

    train, dev, test = examples("train.jsonl"), examples("dev.jsonl"), examples("test.jsonl")
    with SimLMProcess(latency_ms=latency_ms, seed=0) as sim:
        lm = dspy.LM("openai/sim-base", api_base=sim.api_base, api_key="sk-sim", temperature=0.0)
        dspy.configure(lm=lm)
        program = dspy.Predict(Solve)
        started = time.perf_counter()
        if strategy == "bootstrap":
            best = dspy.BootstrapFewShotWithRandomSearch(
                metric=metric,
                max_bootstrapped_demos=4,
                max_labeled_demos=4,
                num_candidate_programs=6,
                num_threads=threads,
            ).compile(program, trainset=train, valset=dev)
        elif strategy == "simba":
            optimizer = dspy.SIMBA(metric=metric, num_threads=threads)
            best = optimizer.compile(program, trainset=train, seed=seed)
        elif strategy == "mipro":
            optimizer = dspy.MIPROv2(metric=metric, auto="light", num_threads=threads, seed=seed)
            best = optimizer.compile(program, trainset=train, valset=dev)
        else:
            best = dspy.BootstrapFewShotWithOptuna(
                metric=metric, max_labeled_demos=4, num_candidate_programs=16, num_threads=threads
            ).compile(program, max_demos=4, trainset=train, valset=dev)
        wall = time.perf_counter() - started
        calls = get_stats(sim.api_base)["requests_total"]
        evaluate = dspy.Evaluate(devset=test, metric=metric, num_threads=threads)
        score = float(evaluate(best).score) / 100
    return {"test": score, "calls": calls, "wall_s": wall}


def run_dspex(
    strategy: str, latency_ms: int, seed: int, concurrency: int, max_calls: int | None
) -> dict[str, Any]:
    from dspex_kernel import (
        Budget,
        Endpoint,
        LMClient,
        ProgramSpec,
        Runtime,
        evaluate,
        load_examples,
        optimize,
    )
    from dspex_kernel.cache import InMemoryLRUCache
    from dspex_simlm.testing import SimLMProcess, get_stats

    spec = ProgramSpec.load(EXAMPLE / "program.yaml")
    train, dev, test = (
        load_examples(EXAMPLE / n) for n in ("train.jsonl", "dev.jsonl", "test.jsonl")
    )
    params = {"n_trials": 16} if strategy == "beacon" else {}

    async def main() -> dict[str, Any]:
        async with SimLMProcess(latency_ms=latency_ms, seed=0) as sim:
            endpoint = Endpoint(api_base=sim.api_base, api_key="sk-sim")
            runtime = Runtime(LMClient(endpoint=endpoint, cache=InMemoryLRUCache()))
            started = time.perf_counter()
            outcome = await optimize(
                spec,
                train,
                dev,
                "numeric",
                runtime=runtime,
                strategy=strategy,
                seed=seed,
                params=params,
                concurrency=concurrency,
                budget=Budget(max_lm_calls=max_calls),
            )
            wall = time.perf_counter() - started
            calls = get_stats(sim.api_base)["requests_total"]
            report = await evaluate(
                spec,
                test,
                "numeric",
                runtime=runtime,
                overrides=outcome.best_overrides or {},
                concurrency=concurrency,
            )
        return {
            "test": report.score,
            "calls": calls,
            "cached": outcome.cached_calls,
            "wall_s": wall,
            "status": outcome.stop_reason,
        }

    return asyncio.run(main())


def side(
    args: argparse.Namespace, which: str, strategy: str, max_calls: int | None = None
) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--one",
        which,
        "--strategies",
        strategy,
        "--latency-ms",
        str(args.latency_ms),
        "--seed",
        str(args.seed),
        "--concurrency",
        str(args.concurrency),
    ]
    if max_calls is not None:
        command += ["--max-calls", str(max_calls)]
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{which} {strategy} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--strategies", default="bootstrap,simba,mipro,beacon")
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--one", choices=["dspy", "dspex"], help=argparse.SUPPRESS)
    parser.add_argument("--max-calls", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    strategies = [s for s in args.strategies.split(",") if s]
    if args.one == "dspy":
        print(json.dumps(run_dspy(strategies[0], args.latency_ms, args.seed, args.concurrency)))
        return
    if args.one == "dspex":
        result = run_dspex(
            strategies[0], args.latency_ms, args.seed, args.concurrency, args.max_calls
        )
        print(json.dumps(result))
        return
    print(f"# bench/optimizers: {' '.join(sys.argv)}")
    print(
        f"# math_qa 300/100/200, sim-base, latency {args.latency_ms} ms, seed {args.seed}, "
        f"concurrency {args.concurrency}"
    )
    table = [
        "| strategy | DSPy optimizer | DSPy test | DSPy calls | DSPy wall s | DSPEx test "
        "| DSPEx calls | DSPEx wall s | calls ratio | DSPEx at ½ DSPy's calls: test (calls) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for strategy in strategies:
        theirs = side(args, "dspy", strategy)
        ours = side(args, "dspex", strategy)
        half_text, half_ok = "—", True
        if strategy in HALF_BUDGET:
            half = side(args, "dspex", strategy, theirs["calls"] // 2)
            half_text = f"{half['test']:.3f} ({half['calls']})"
            half_ok = half["test"] >= theirs["test"]
        ratio = ours["calls"] / theirs["calls"]
        table.append(
            f"| {strategy} | {DSPY_NAMES[strategy]} | {theirs['test']:.3f} | {theirs['calls']} "
            f"| {theirs['wall_s']:.1f} | {ours['test']:.3f} | {ours['calls']} "
            f"| {ours['wall_s']:.1f} | {ratio:.2f} | {half_text} |"
        )
        ok = ours["test"] >= theirs["test"] and ours["calls"] <= theirs["calls"] and half_ok
        verdicts.append(
            f"{strategy}: {'target met' if ok else 'TARGET MISSED'} (score "
            f"{ours['test']:.3f} vs {theirs['test']:.3f}, calls {ours['calls']} vs "
            f"{theirs['calls']}, {ours['cached']} more answered by the cache"
            + ("" if strategy not in HALF_BUDGET else f"; at half budget {half_text}")
            + ")"
        )
        print(table[-1], flush=True)
    print()
    print("\n".join(table))
    print()
    print("\n".join(verdicts))


if __name__ == "__main__":
    main()
