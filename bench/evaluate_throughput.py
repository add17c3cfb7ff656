"""evaluate() throughput against the simulated LM over real HTTP (litellm), at a fixed
LM latency: 200 examples, 100 ms per call, concurrency 50. The ideal is
ceil(200 / 50) x 0.1 s = 0.4 s; the printed ratio is measured / ideal.

    .venv/bin/python bench/evaluate_throughput.py [--examples 200] [--latency-ms 100]
        [--concurrency 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from dspex_kernel import (
    Endpoint,
    LMClient,
    ProgramSpec,
    Runtime,
    evaluate,
    load_examples,
)
from dspex_simlm import PRICES
from dspex_simlm.testing import SimLMProcess

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "math_qa"


async def run(args: argparse.Namespace, api_base: str) -> list[float]:
    spec = ProgramSpec.load(EXAMPLE / "program.yaml")
    data = (load_examples(EXAMPLE / "test.jsonl") * 10)[: args.examples]
    # No cache: every example must reach the LM. Distinct rollouts per round keep the
    # simulated LM honest even if a cache sat in between.
    client = LMClient(endpoint=Endpoint(api_base=api_base, api_key="sk-sim"), prices=PRICES)
    runtime = Runtime(client)
    await evaluate(spec, data[:20], "numeric", runtime=runtime, concurrency=args.concurrency)
    walls = []
    for _ in range(args.rounds):
        report = await evaluate(
            spec, data, "numeric", runtime=runtime, concurrency=args.concurrency
        )
        assert report.n_failed == 0, report.summary()
        walls.append(report.wall_s)
    return walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ideal = math.ceil(args.examples / args.concurrency) * args.latency_ms / 1000
    with SimLMProcess(latency_ms=args.latency_ms) as sim:
        walls = asyncio.run(run(args, sim.api_base))
    wall = statistics.median(walls)
    print(
        f"evaluate: {args.examples} examples, LM latency {args.latency_ms} ms, "
        f"concurrency {args.concurrency}, litellm over HTTP to the simulated LM"
    )
    print(f"  rounds (s): {', '.join(f'{w:.3f}' for w in walls)}")
    print(
        f"  median {wall:.3f} s; ideal {ideal:.3f} s; ratio {wall / ideal:.2f} "
        f"(goal: well under 2 s, i.e. ratio < 5)"
    )


if __name__ == "__main__":
    main()
