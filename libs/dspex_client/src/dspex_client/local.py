"""Evaluating a program in this process with the kernel library: against a named model and
endpoint, or against the simulated LM (started here when no endpoint is given), with its
nominal prices so that costs are counted."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from dspex_kernel import (
    Endpoint,
    EvaluationReport,
    InMemoryLRUCache,
    LMClient,
    ProgramSpec,
    Runtime,
    evaluate,
    get_metric,
)

__all__ = ["evaluate_locally", "with_model"]

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def with_model(spec: ProgramSpec, model: str) -> ProgramSpec:
    """``spec`` with every stage on ``model``: the default model is replaced and per-stage
    models are dropped (a variable space limited to other models does not stand in the way:
    this is an explicit choice, not a candidate)."""
    data = spec.model_dump(mode="json")
    configuration = data.setdefault("configuration", {})
    configuration.setdefault("defaults", {})["model"] = model
    for stage in configuration.get("stages", {}).values():
        stage.pop("model", None)
    return ProgramSpec.from_data(data)


async def evaluate_locally(
    spec: ProgramSpec,
    examples: Sequence[Mapping[str, Any]],
    metric: str,
    *,
    lm_model: str | None = None,
    lm_api_base: str | None = None,
    lm_api_key: str | None = None,
    sim_api_base: str | None = None,
    concurrency: int = 16,
    overrides: Mapping[str, Any] | None = None,
) -> EvaluationReport:
    """Score ``spec`` on ``examples``. With ``lm_model`` the program runs on that model (at
    ``lm_api_base``, or the provider's own API); without it on the simulated LM at
    ``sim_api_base``, or on one started for the call."""
    score_fn = get_metric(metric, allow_import=True)  # the user's own process: imports are fine
    if lm_model is not None:
        client = LMClient(
            endpoint=Endpoint(api_base=lm_api_base, api_key=lm_api_key), cache=InMemoryLRUCache()
        )
        return await evaluate(
            with_model(spec, lm_model),
            examples,
            score_fn,
            runtime=Runtime(client),
            overrides=overrides,
            concurrency=concurrency,
        )
    from dspex_simlm import PRICES
    from dspex_simlm.testing import SimLMProcess

    async def on_sim(api_base: str) -> EvaluationReport:
        client = LMClient(
            endpoint=Endpoint(api_base=api_base, api_key="sk-simulated"),
            cache=InMemoryLRUCache(),
            prices=PRICES,
        )
        return await evaluate(
            spec,
            examples,
            score_fn,
            runtime=Runtime(client, model="openai/sim-base"),
            overrides=overrides,
            concurrency=concurrency,
        )

    if sim_api_base is not None:
        return await on_sim(sim_api_base)
    async with SimLMProcess() as sim:
        return await on_sim(sim.api_base)
