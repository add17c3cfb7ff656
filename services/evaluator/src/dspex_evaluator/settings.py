"""Evaluator service settings, from ``DSPEX_*`` environment variables (the LM's from
``DSPEX_LM_*``, shared with the other services that run programs)."""

from __future__ import annotations

from pydantic import Field

from dspex_runtime.lm_settings import LMServiceSettings


class EvaluatorSettings(LMServiceSettings):
    service_name: str = "evaluator"
    durable: str = Field(default="evaluator", description="The consumer all replicas share.")
    example_concurrency: int = Field(
        default=16,
        ge=1,
        description="LM calls in flight per replica, over all the calls it is scoring "
        "(``concurrency`` of them at once): the replica's share of the LM's capacity.",
    )
