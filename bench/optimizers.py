"""DSPEx strategies beside the DSPy optimizers they follow, on the same task and split.

math_qa (300 train, 100 dev, 200 held-out test), the program of program.yaml (``question ->
answer: int``, sim-base at temperature 0; DSPy's signature is built from it), the integer
answer as metric, the simulated LM over HTTP through litellm with 16 calls in flight. Each
side-run is a fresh process with its own simulated LM and a fresh in-memory LM cache (a
user's; no disk cache). "LM calls" are HTTP requests the simulated LM received during the
optimization, not the test evaluation.

| DSPEx | DSPy 3.4.1 |
|---|---|
| bootstrap | BootstrapFewShotWithRandomSearch(4 bootstrapped, 4 labeled, 6 candidate programs) |
| simba | SIMBA (defaults: bsize 32, 6 candidates, 8 steps, 4 demos; trainset only) |
| mipro | MIPROv2(auto="light") |
| beacon | BootstrapFewShotWithOptuna (16 trials, 4 demos): DSPy's Bayesian optimizer |

DSPEx strategies run with their defaults, then again with a call budget: simba and mipro
with half of DSPy's calls, beacon (whose defaults search a larger space than DSPy's
optimizer, with more calls) with DSPy's calls (``max_lm_calls`` counts cache hits too;
measured calls are reported). Targets: DSPEx test >= DSPy test with calls <= DSPy calls, by
the default run or, where that spends more, by the run at DSPy's calls; at half the
budget, test >= DSPy test. ``--quick`` shrinks both sides alike. Exit code 0.

    .venv/bin/python bench/optimizers.py [--strategies bootstrap,simba,mipro,beacon]
        [--latency-ms 20] [--seeds 0,1,2] [--concurrency 16] [--quick] [--params JSON]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from dspex_kernel import (
    STRATEGIES,
    Budget,
    Endpoint,
    InMemoryLRUCache,
    LMClient,
    ProgramSpec,
    Runtime,
    evaluate,
    execute,
    load_examples,
    optimize,
)
from dspex_kernel.dspy_compat import load_dspy_state
from dspex_simlm import PRICES
from dspex_simlm.testing import SimLMProcess, get_stats

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "math_qa"
METRIC = "numeric"  # as `make demo`; on integer answers the same as DSPy's int compare
# The budgeted run: its share of DSPy's calls (as max_lm_calls).
BUDGET_SHARE = {"simba": 0.5, "mipro": 0.5, "beacon": 1.0}
DSPY_NAMES = {
    "bootstrap": "BootstrapFewShotWithRandomSearch",
    "simba": "SIMBA",
    "mipro": "MIPROv2 light",
    "beacon": "BootstrapFewShotWithOptuna",
}
# --quick: the same reductions on both sides, as (DSPy's settings, DSPEx's params).
QUICK: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "bootstrap": ({"num_candidate_programs": 2}, {"num_candidate_sets": 2}),
    "simba": ({"max_steps": 2}, {"max_steps": 2}),
    "mipro": ({"num_candidates": 4, "num_trials": 4}, {"num_candidates": 4, "num_trials": 4}),
    "beacon": ({"num_candidate_programs": 4}, {"n_trials": 4}),
}


def split(name: str) -> list[dict[str, Any]]:
    return load_examples(EXAMPLE / f"{name}.jsonl")


# -- DSPy, in its own process ------------------------------------------------------------------
def compile_dspy(
    dspy: Any, strategy: str, program: Any, metric: Any, args: argparse.Namespace
) -> Any:
    train, dev = (dspy_examples(dspy, name) for name in ("train", "dev"))
    quick = QUICK[strategy][0] if args.quick else {}
    threads = args.concurrency
    if strategy == "bootstrap":
        return dspy.BootstrapFewShotWithRandomSearch(
            metric=metric,
            max_bootstrapped_demos=4,
            max_labeled_demos=4,
            num_candidate_programs=quick.get("num_candidate_programs", 6),
            num_threads=threads,
        ).compile(program, trainset=train, valset=dev)
    if strategy == "simba":
        simba = dspy.SIMBA(metric=metric, num_threads=threads, max_steps=quick.get("max_steps", 8))
        return simba.compile(program, trainset=train, seed=args.seed)
    if strategy == "mipro":
        # 3.4.1 deprecates requires_permission_to_run (it no longer asks): left out.
        # compile(seed=0) would fall back to the constructor's seed (9): seeded here.
        # DSPy refuses num_trials beside auto, so a quick run sizes both sides by hand.
        size = {"auto": None, "num_candidates": quick["num_candidates"]} if quick else {}
        mipro = dspy.MIPROv2(
            metric=metric, num_threads=threads, seed=args.seed, **({"auto": "light"} | size)
        )
        trials = {"num_trials": quick["num_trials"]} if quick else {}
        return mipro.compile(program, trainset=train, valset=dev, **trials)
    # BootstrapFewShotWithOptuna takes no seed: its TPE sampler is seeded by the OS.
    return dspy.BootstrapFewShotWithOptuna(
        metric=metric,
        max_labeled_demos=4,
        num_candidate_programs=quick.get("num_candidate_programs", 16),
        num_threads=threads,
    ).compile(program, max_demos=4, trainset=train, valset=dev)


def dspy_examples(dspy: Any, name: str) -> list[Any]:
    return [
        dspy.Example(question=r["question"], answer=r["answer"]).with_inputs("question")
        for r in split(name)
    ]


def dspy_program(dspy: Any, spec: ProgramSpec) -> Any:
    """``dspy.Predict`` of the spec's one signature: same fields, types, descriptions."""
    (sig,) = spec.signatures.values()

    def field(kind: Any, desc: str) -> Any:
        return kind(desc=desc) if desc else kind()

    fields = {f.name: (f.annotation, field(dspy.InputField, f.description)) for f in sig.inputs}
    fields |= {f.name: (f.annotation, field(dspy.OutputField, f.description)) for f in sig.outputs}
    return dspy.Predict(dspy.make_signature(fields, sig.instructions))


def dspy_metric(example: Any, prediction: Any, trace: Any = None) -> float:
    try:
        return float(int(prediction.answer) == int(example.answer))
    except (TypeError, ValueError, AttributeError):
        return 0.0


def run_dspy(strategy: str, args: argparse.Namespace) -> dict[str, Any]:
    import dspy

    # A fresh memory cache and no disk cache: nothing from an earlier run is reused.
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    spec = ProgramSpec.load(EXAMPLE / "program.yaml")
    with SimLMProcess(latency_ms=args.latency_ms, seed=0) as sim:
        lm = dspy.LM("openai/sim-base", api_base=sim.api_base, api_key="sim", temperature=0.0)
        dspy.configure(lm=lm)
        # Warm-up outside the timer (litellm's import alone takes seconds), uncached.
        dspy.LM("openai/sim-base", api_base=sim.api_base, api_key="sim", cache=False)("hi")
        before = get_stats(sim.api_base)["requests_total"]
        started = time.perf_counter()
        best = compile_dspy(dspy, strategy, dspy_program(dspy, spec), dspy_metric, args)
        wall = time.perf_counter() - started
        calls = get_stats(sim.api_base)["requests_total"] - before
        test = dspy_examples(dspy, "test")
        evaluator = dspy.Evaluate(devset=test, metric=dspy_metric, num_threads=args.concurrency)
        score = float(evaluator(best).score) / 100
        # Cross-check: DSPy's winner, loaded from its saved state, scored by our evaluator.
        ported = load_dspy_state(spec, best.dump_state())
        runtime = Runtime(LMClient(endpoint=Endpoint(api_base=sim.api_base, api_key="sim")))
        ours = asyncio.run(
            evaluate(ported, split("test"), METRIC, runtime=runtime, concurrency=args.concurrency)
        )
    return {"test": score, "calls": calls, "wall_s": wall, "test_by_dspex": ours.score}


# -- DSPEx, in its own process -----------------------------------------------------------------
async def run_dspex(strategy: str, args: argparse.Namespace) -> dict[str, Any]:
    spec = ProgramSpec.load(EXAMPLE / "program.yaml")
    async with SimLMProcess(latency_ms=args.latency_ms, seed=0) as sim:
        endpoint = Endpoint(api_base=sim.api_base, api_key="sim")
        # Warm-up outside the timer (litellm's import alone takes seconds), uncached.
        warm = Runtime(LMClient(endpoint=endpoint, prices=PRICES))
        await execute(spec, {"question": "hi"}, runtime=warm)
        # The sim's nominal prices, as `dspex_client.local` sets them: litellm then finds
        # the model at once instead of searching its price map on every call.
        client = LMClient(endpoint=endpoint, cache=InMemoryLRUCache(), prices=PRICES)
        runtime = Runtime(client)
        before = get_stats(sim.api_base)["requests_total"]
        started = time.perf_counter()
        outcome = await optimize(
            spec,
            split("train"),
            split("dev"),
            METRIC,
            runtime=runtime,
            strategy=strategy,
            seed=args.seed,
            params=(QUICK[strategy][1] if args.quick else {}) | json.loads(args.params),
            concurrency=args.concurrency,
            budget=Budget(max_lm_calls=args.max_calls),
        )
        wall = time.perf_counter() - started
        calls = get_stats(sim.api_base)["requests_total"] - before
        best = dict(outcome.best_overrides or {})
        test, concurrency = split("test"), args.concurrency
        report = await evaluate(
            spec, test, METRIC, runtime=runtime, overrides=best, concurrency=concurrency
        )
    return {
        "test": report.score,
        "calls": calls,
        "wall_s": wall,
        "cached": outcome.cached_calls,
        "stop": outcome.stop_reason,
        "chose": {k: v for k, v in best.items() if not k.endswith(".demos")},
    }


# -- the comparison ----------------------------------------------------------------------------
def side(
    args: argparse.Namespace,
    which: str,
    strategy: str,
    seed: int,
    max_calls: int | None = None,
) -> dict[str, Any] | None:
    """One side-run in a fresh process: its result, or None (after a note) if it failed."""
    command = [sys.executable, __file__, "--one", which, "--strategies", strategy]
    command += ["--latency-ms", str(args.latency_ms), "--seed", str(seed)]
    command += ["--concurrency", str(args.concurrency)] + (["--quick"] if args.quick else [])
    command += ["--max-calls", str(max_calls)] if max_calls is not None else []
    command += ["--params", args.params]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 and "SimLMStartError" in done.stderr:
        # The simulated LM did not come up (seen rarely on a loaded machine): not the
        # side-run's result, so it runs once more.
        print(f"  {which} {strategy}: the simulated LM did not start; once more", flush=True)
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"  {which} {strategy}: FAILED\n{done.stderr[-3000:]}", flush=True)
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    budget = f" (budget {max_calls})" if max_calls is not None else ""
    print(
        f"  seed {seed} {which:5} {strategy}{budget}: test {result['test']:.3f}, "
        f"{result['calls']} calls, {result['wall_s']:.1f} s",
        flush=True,
    )
    return result


def runs(args: argparse.Namespace, strategy: str) -> list[dict[str, Any]] | None:
    """For each seed: DSPy's run, DSPEx's, and DSPEx's at its share of DSPy's calls."""
    out = []
    for seed in args.seed_list:
        theirs = side(args, "dspy", strategy, seed)
        ours = side(args, "dspex", strategy, seed)
        if theirs is None or ours is None:
            return None
        budgeted = None
        if strategy in BUDGET_SHARE:
            share = BUDGET_SHARE[strategy]
            budgeted = side(args, "dspex", strategy, seed, int(theirs["calls"] * share))
            if budgeted is None:
                return None
        out.append({"dspy": theirs, "dspex": ours, "budgeted": budgeted})
    return out


def mean(values: list[float]) -> float:
    return statistics.fmean(values)


def spread(values: list[float]) -> str:
    text = f"{mean(values):.3f}"
    return text + (f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else "")


def compare(args: argparse.Namespace, strategy: str) -> tuple[str, list[str], bool]:
    """The strategy's table row (means over the seeds), its verdict and notes, and whether
    its targets hold on those means."""
    results = runs(args, strategy)
    if results is None:
        row = f"| {strategy} | {DSPY_NAMES[strategy]} | failed |" + " |" * 9
        return row, [f"{strategy}: a side failed, no verdict (see above)"], False

    def of(side_name: str, key: str) -> list[float]:
        return [float(r[side_name][key]) for r in results if r[side_name] is not None]

    their_test, their_calls = of("dspy", "test"), mean(of("dspy", "calls"))
    our_test, our_calls = of("dspex", "test"), mean(of("dspex", "calls"))
    budget_test, budget_calls = of("budgeted", "test"), of("budgeted", "calls")
    share = BUDGET_SHARE.get(strategy)
    row = (
        f"| {strategy} | {DSPY_NAMES[strategy]} | {spread(their_test)} | {their_calls:.0f} "
        f"| {mean(of('dspy', 'wall_s')):.1f} | {spread(our_test)} | {our_calls:.0f} "
        f"| {mean(of('dspex', 'wall_s')):.1f} | {our_calls / max(their_calls, 1):.2f} "
        + (
            f"| {share:g} | {spread(budget_test)} | {mean(budget_calls):.0f} |"
            if budget_test
            else "| — | — | — |"
        )
    )
    # The first target, by the default run, or by the run at DSPy's calls where the
    # default one spends more.
    by, test, calls = "default run", our_test, our_calls
    if our_calls > their_calls and share == 1.0 and budget_test:
        by, test, calls = "run at DSPy's calls", budget_test, mean(budget_calls)
    checks = [
        (mean(test) >= mean(their_test), f"test {mean(test):.3f} >= {mean(their_test):.3f} ({by})"),
        (calls <= their_calls, f"calls {calls:.0f} <= {their_calls:.0f} ({by})"),
    ]
    if budget_test and share is not None and share < 1.0:
        ok = mean(budget_test) >= mean(their_test)
        text = f"at {share:g} of the calls test {mean(budget_test):.3f} >= {mean(their_test):.3f}"
        checks.append((ok, text))
    met = all(ok for ok, _ in checks)
    agree = all(abs(r["dspy"]["test"] - r["dspy"]["test_by_dspex"]) < 1e-9 for r in results)
    chose = [r["dspex"]["chose"] or "none" for r in results]
    return (
        row,
        [
            f"{strategy}: {'target met' if met else 'TARGET MISSED'}: "
            + "; ".join(f"{'ok' if ok else 'NO'} {text}" for ok, text in checks),
            f"  per seed: DSPy {[round(t, 3) for t in their_test]}, DSPEx "
            f"{[round(t, 3) for t in our_test]}"
            + (
                f", DSPEx at {share:g} of DSPy's calls {[round(t, 3) for t in budget_test]}"
                if budget_test
                else ""
            ),
            f"  cache hits not counted as calls (mean): {mean(of('dspex', 'cached')):.0f}; "
            f"DSPEx winners' settings besides demos: {chose}",
            f"  DSPy's winners on test, DSPy Evaluate vs DSPEx evaluate: "
            f"{'agree' if agree else 'DIFFER'}",
        ],
        met,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--strategies", default="bootstrap,simba,mipro,beacon")
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated; rows are means")
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="smaller settings on both sides")
    parser.add_argument("--params", default="{}", help="DSPEx strategy params (JSON object)")
    parser.add_argument("--one", choices=["dspy", "dspex"], help=argparse.SUPPRESS)
    parser.add_argument("--max-calls", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    strategies = [s for s in args.strategies.split(",") if s]
    args.seed_list = [int(x) for x in args.seeds.split(",") if x]
    if args.one == "dspy":
        print(json.dumps(run_dspy(strategies[0], args)))
        return
    if args.one == "dspex":
        print(json.dumps(asyncio.run(run_dspex(strategies[0], args))))
        return
    started = time.perf_counter()
    print(f"# {' '.join(['python', *sys.argv])}")
    print(
        f"# math_qa 300 train / 100 dev / 200 test, sim-base over HTTP, latency "
        f"{args.latency_ms} ms, seeds {args.seeds} (rows: means), concurrency {args.concurrency}"
        + (", QUICK settings" if args.quick else "")
        + (f", DSPEx params {args.params}" if json.loads(args.params) else "")
    )
    table = [
        "| strategy | DSPy optimizer | DSPy test | DSPy calls | DSPy wall s | DSPEx test "
        "| DSPEx calls | DSPEx wall s | calls ratio | budget: share of DSPy's calls "
        "| DSPEx budgeted test | DSPEx budgeted calls |",
        "|---" * 12 + "|",
    ]
    lines, all_met = [], True
    for strategy in strategies:
        if strategy not in DSPY_NAMES or strategy not in STRATEGIES:
            why = "no DSPy pair" if strategy not in DSPY_NAMES else "not registered in DSPEx"
            print(f"  skipped {strategy}: {why}", flush=True)
            lines.append(f"{strategy}: skipped ({why})")
            continue
        row, notes, met = compare(args, strategy)
        table.append(row)
        lines += notes
        all_met &= met
    print("\n" + "\n".join(table) + "\n")
    print("\n".join(lines))
    print(f"\nverdict: {'all targets met' if all_met else 'TARGETS MISSED'}")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
