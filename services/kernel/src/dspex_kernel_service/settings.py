"""Kernel service settings, from ``DSPEX_*`` environment variables (the LM's from
``DSPEX_LM_*``, shared with the other services that run programs)."""

from __future__ import annotations

from pathlib import Path

from dspex_runtime.lm_settings import LMServiceSettings


class KernelSettings(LMServiceSettings):
    service_name: str = "kernel"
    durable: str = "kernel"
    programs_dir: Path | None = None
    """A folder of ProgramSpec files (YAML/JSON) served by name until the registry lands."""
