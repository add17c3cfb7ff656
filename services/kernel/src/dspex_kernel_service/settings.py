"""Kernel service settings, from ``DSPEX_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from dspex_runtime.settings import ServiceSettings


class KernelSettings(ServiceSettings):
    service_name: str = "kernel"
    durable: str = "kernel"
    lm_model: str | None = None
    """Model used by programs whose configuration names none."""
    lm_api_base: str | None = None
    lm_api_key: SecretStr | None = None
    lm_max_retries: int = 3
    lm_timeout_s: float = 60.0
    lm_cache: Literal["none", "memory", "nats"] = "nats"
    lm_prices: dict[str, tuple[float, float]] = Field(default_factory=dict)
    """USD per 1M prompt and completion tokens for models litellm has no price for."""
    programs_dir: Path | None = None
    """A folder of ProgramSpec files (YAML/JSON) served by name until the registry lands."""
