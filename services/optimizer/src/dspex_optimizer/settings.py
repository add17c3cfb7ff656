"""Optimizer service settings, from ``DSPEX_*`` environment variables (``DSPEX_MAX_RUNS``,
``DSPEX_ACK_WAIT_S``, ...; the LM ones are ``DSPEX_LM_*``)."""

from __future__ import annotations

from pydantic import Field

from dspex_runtime.lm_settings import LMServiceSettings


class OptimizerSettings(LMServiceSettings):
    service_name: str = "optimizer"
    durable: str = Field(
        default="optimizer", description="Durable consumer of OptimizeRequested (and prefix)."
    )
    max_runs: int = Field(default=4, ge=1, description="Runs one replica owns at a time.")
    ack_wait_s: float = Field(
        default=30.0,
        gt=0,
        description="A run whose owner stops heartbeating for this long is redelivered to "
        "another replica (heartbeats go every third of it).",
    )
    max_deliver: int = Field(
        default=20,
        ge=1,
        description="Deliveries of a message before it is dead-lettered: a run survives this "
        "many crashes or restarts of its owners, less one.",
    )
    run_concurrency: int = Field(
        default=16,
        ge=1,
        description="CandidateProposed of one run in flight, when the request names none.",
    )
    proposal_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="How long a proposal waits for its score before it is published again "
        "(same id: a duplicate while JetStream remembers it, a retry after).",
    )
    run_log_bucket: str = Field(default="dspex_run_log", description="KV bucket of run logs.")
    run_control_bucket: str = Field(
        default="dspex_run_control", description="KV bucket of pause/resume/cancel states."
    )
    run_log_ttl_s: float = Field(
        default=30 * 24 * 3600.0,
        ge=0,
        description="Run log and control entries expire this long after their last write "
        "(0: never). Longer than any run, pauses included.",
    )
    registry_timeout_s: float = Field(
        default=10.0, gt=0, description="Wait for the registry when resolving a program."
    )
