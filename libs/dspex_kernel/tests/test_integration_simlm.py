"""The kernel end to end over real HTTP: litellm → the simulated LM, as the demo and the
services use it. Better prompts must score better; faults must be retried, not fatal."""

from __future__ import annotations

from pathlib import Path

import pytest

from dspex_kernel import Endpoint, LMClient, ProgramSpec, Runtime, evaluate, load_examples
from dspex_simlm import PRICES
from dspex_simlm.testing import SimLMProcess

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


def runtime_for(api_base: str, **client: object) -> tuple[LMClient, Runtime]:
    lm = LMClient(endpoint=Endpoint(api_base=api_base, api_key="sk-test"), prices=PRICES, **client)  # type: ignore[arg-type]
    return lm, Runtime(lm)


async def test_better_prompts_score_better_over_http(sim_lm: str, example_dir: Path) -> None:
    spec = ProgramSpec.load(example_dir / "program.yaml")
    dev = load_examples(example_dir / "dev.jsonl")
    train = load_examples(example_dir / "train.jsonl")
    client, runtime = runtime_for(sim_lm)
    plain = await evaluate(spec, dev, "numeric", runtime=runtime, concurrency=16)
    demos = [{"question": ex["question"], "answer": ex["answer"]} for ex in train[:4]]
    better = await evaluate(
        spec,
        dev,
        "numeric",
        runtime=runtime,
        concurrency=16,
        overrides={"module": "chain_of_thought", "demos": demos},
    )
    print(f"dev accuracy: predict {plain.score:.2f}, chain of thought + 4 demos {better.score:.2f}")
    assert plain.n_failed == better.n_failed == 0
    assert better.score >= plain.score + 0.15
    assert client.usage.calls == 200
    assert client.usage.cost_usd > 0
    assert better.results[0].outputs.keys() == {"reasoning", "answer"}
    assert isinstance(better.results[0].outputs["answer"], int)


async def test_json_adapter_over_http(sim_lm: str, example_dir: Path) -> None:
    spec = ProgramSpec.load(example_dir / "program.yaml")
    dev = load_examples(example_dir / "dev.jsonl")[:20]
    _, runtime = runtime_for(sim_lm)
    report = await evaluate(
        spec, dev, "numeric", runtime=runtime, want_traces=True, overrides={"solve.adapter": "json"}
    )
    assert report.n_failed == 0
    assert {t.adapter for r in report.results for t in r.trace} == {"json"}


async def test_faults_are_retried_and_evaluation_completes(example_dir: Path) -> None:
    spec = ProgramSpec.load(example_dir / "program.yaml")
    dev = load_examples(example_dir / "dev.jsonl")[:40]
    with SimLMProcess(fault_rate=0.3, fault_kinds=["429", "500"], seed=3) as sim:
        client, runtime = runtime_for(
            sim.api_base, max_retries=8, backoff_base_s=0.01, backoff_max_s=0.5
        )
        report = await evaluate(spec, dev, "numeric", runtime=runtime, concurrency=8)
    print(f"retries by code: {client.retries_by_code}")
    assert report.n_failed == 0
    assert client.retries > 0
    assert set(client.retries_by_code) <= {"lm_rate_limited", "lm_unavailable"}
