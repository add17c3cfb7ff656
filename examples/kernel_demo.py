"""The kernel demo (`make demo`): evaluate the bundled math_qa program against the
simulated LM over real HTTP, as written and with chain of thought plus four demos, and
print the scores and what the LM calls cost."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from dspex_kernel import (
    Endpoint,
    InMemoryLRUCache,
    LMClient,
    ProgramSpec,
    Runtime,
    evaluate,
    load_examples,
)
from dspex_simlm import PRICES
from dspex_simlm.testing import SimLMProcess

HERE = Path(__file__).resolve().parent / "math_qa"


async def main() -> int:
    spec = ProgramSpec.load(HERE / "program.yaml")
    train = load_examples(HERE / "train.jsonl")
    test = load_examples(HERE / "test.jsonl")
    with SimLMProcess(latency_ms=20) as sim:
        client = LMClient(
            endpoint=Endpoint(api_base=sim.api_base, api_key="sk-simulated"),
            cache=InMemoryLRUCache(),
            prices=PRICES,
        )
        runtime = Runtime(client)
        print(
            f"program {spec.name} v{spec.version}: {len(spec.stages)} stage(s); "
            f"{len(test)} test examples; simulated LM at {sim.api_base}"
        )
        baseline = await evaluate(spec, test, "numeric", runtime=runtime, concurrency=32)
        print(
            f"  as written (predict, no demos):    score {baseline.score:.3f}  "
            f"({baseline.usage.calls} LM calls, {baseline.wall_s:.2f} s)"
        )
        demos = [{"question": ex["question"], "answer": ex["answer"]} for ex in train[:4]]
        better = {"module": "chain_of_thought", "demos": demos}
        improved = await evaluate(
            spec, test, "numeric", runtime=runtime, overrides=better, concurrency=32
        )
        print(
            f"  chain of thought + 4 demos:        score {improved.score:.3f}  "
            f"({improved.usage.calls} LM calls, {improved.wall_s:.2f} s)"
        )
        usage = client.usage
        print(
            f"LM usage: {usage.calls} calls, {usage.prompt_tokens} prompt + "
            f"{usage.completion_tokens} completion tokens, ${usage.cost_usd:.4f}"
        )
    print(
        json.dumps(
            {
                "baseline_score": round(baseline.score, 4),
                "improved_score": round(improved.score, 4),
                **usage.to_dict(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
