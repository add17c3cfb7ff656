"""Kernel overhead per Predict call, beside DSPy's, with the LM stubbed at the client
boundary (no HTTP): our LMClient with a stub transport vs dspy.LM with a stub engine.

Both stubs return the same fixed chat-format reply at once, so the time per call is what
each library spends around the model call: formatting, caching keys, parsing, tracing.
Rounds alternate between the two so machine noise hits both alike; medians are printed.

    .venv/bin/python bench/kernel_overhead.py [--calls 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import warnings

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy
from dspy.lm15 import Message, Response, TextPart
from dspy.lm15 import Usage as DspyUsage

from dspex_kernel import LMClient, ProgramSpec, Runtime, execute
from dspex_kernel.lm import Endpoint, LMRequest, RawCompletion

REPLY = "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"
SIGNATURE = "question -> answer"


async def stub_transport(request: LMRequest, endpoint: Endpoint, timeout_s: float) -> RawCompletion:
    return RawCompletion(REPLY, request.model, 10, 5, "stop", 0.0)


def _dspy_response() -> Response:
    return Response(
        id=None,
        model="stub",
        message=Message.assistant([TextPart(REPLY)]),
        finish_reason="stop",
        usage=DspyUsage(input_tokens=10, output_tokens=5, total_tokens=15),
    )


class StubEngine:
    def complete(self, request: object) -> Response:
        return _dspy_response()


class AsyncStubEngine:
    async def complete(self, request: object) -> Response:
        return _dspy_response()


async def ours(calls: int) -> float:
    spec = ProgramSpec.from_data(
        {"name": "bench", "stages": [{"name": "p", "module": "predict", "signature": SIGNATURE}]}
    )
    runtime = Runtime(LMClient(transport=stub_transport), model="openai/stub")
    started = time.perf_counter()
    for i in range(calls):
        await execute(spec, {"question": f"What is the capital of country {i}?"}, runtime=runtime)
    return (time.perf_counter() - started) / calls


def dspy_sync(calls: int) -> float:
    lm = dspy.LM("openai/stub", engine=StubEngine(), async_engine=AsyncStubEngine(), cache=False)
    predict = dspy.Predict(SIGNATURE)
    with dspy.context(lm=lm):
        started = time.perf_counter()
        for i in range(calls):
            predict(question=f"What is the capital of country {i}?")
    return (time.perf_counter() - started) / calls


async def dspy_async(calls: int) -> float:
    lm = dspy.LM("openai/stub", engine=StubEngine(), async_engine=AsyncStubEngine(), cache=False)
    predict = dspy.Predict(SIGNATURE)
    with dspy.context(lm=lm):
        started = time.perf_counter()
        for i in range(calls):
            await predict.acall(question=f"What is the capital of country {i}?")
    return (time.perf_counter() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    # Warm-up: imports, caches of compiled prompts, first-call paths.
    asyncio.run(ours(50))
    dspy_sync(50)
    asyncio.run(dspy_async(50))
    results: dict[str, list[float]] = {"dspex": [], "dspy": [], "dspy_async": []}
    for _ in range(args.rounds):
        results["dspex"].append(asyncio.run(ours(args.calls)))
        results["dspy"].append(dspy_sync(args.calls))
        results["dspy_async"].append(asyncio.run(dspy_async(max(1, args.calls // 4))))
    med = {k: statistics.median(v) for k, v in results.items()}
    print(
        f"kernel overhead per Predict call, LM stubbed at the client boundary "
        f"({args.calls} calls x {args.rounds} rounds, medians):"
    )
    print(f"  dspex execute()          {med['dspex'] * 1e6:9.1f} us")
    print(f"  dspy Predict (sync)      {med['dspy'] * 1e6:9.1f} us")
    print(f"  dspy Predict.acall       {med['dspy_async'] * 1e6:9.1f} us")
    print(f"  ratio dspex / dspy sync  {med['dspex'] / med['dspy']:9.3f}  (target <= 0.2)")
    print(f"  ratio dspex / dspy async {med['dspex'] / med['dspy_async']:9.3f}")


if __name__ == "__main__":
    main()
