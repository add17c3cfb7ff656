"""Run-time configuration of the simulated LM server (latency, faults, knowledge files)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

# The one line the server prints to stdout, followed by its api_base, once it listens.
READY_PREFIX = "DSPEX_SIMLM_READY"
FAULT_KINDS = ("429", "500", "timeout", "malformed")
MODEL_SKILL = {"sim-small": 0.35, "sim-base": 0.55, "sim-large": 0.75}
# Nominal list prices (USD per 1M prompt and completion tokens) so that cost accounting and
# cost budgets have something real to count; abler models cost more, as they do in life.
PRICES = {
    "openai/sim-small": (0.15, 0.60),
    "openai/sim-base": (0.50, 1.50),
    "openai/sim-large": (2.50, 10.00),
}
# Fields that POST /admin/config may change while the server runs.
MUTABLE_FIELDS = (
    "latency_ms",
    "latency_jitter_ms",
    "fault_rate",
    "fault_kinds",
    "retry_after_s",
    "timeout_s",
    "seed",
)


class ConfigError(ValueError):
    """A configuration value is out of range or unknown."""


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything the server needs; ``knowledge`` empty means the bundled default task."""

    host: str = "127.0.0.1"
    port: int = 0
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    retry_after_s: float = 0.2
    timeout_s: float = 30.0
    seed: int = 0
    knowledge: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.latency_ms < 0 or self.latency_jitter_ms < 0:
            raise ConfigError("latency_ms and latency_jitter_ms must be >= 0")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ConfigError("fault_rate must be in [0, 1]")
        unknown = [k for k in self.fault_kinds if k not in FAULT_KINDS]
        if unknown or not self.fault_kinds:
            raise ConfigError(f"fault_kinds must be a non-empty subset of {list(FAULT_KINDS)}")
        if self.retry_after_s < 0 or self.timeout_s < 0:
            raise ConfigError("retry_after_s and timeout_s must be >= 0")

    def with_changes(self, changes: Mapping[str, Any]) -> SimConfig:
        """A copy with run-time changes applied; raises :class:`ConfigError` on bad input."""
        unknown = sorted(set(changes) - set(MUTABLE_FIELDS))
        if unknown:
            raise ConfigError(f"cannot change {unknown}; changeable: {list(MUTABLE_FIELDS)}")
        typed: dict[str, Any] = {}
        try:
            for key, value in changes.items():
                if key == "fault_kinds":
                    typed[key] = parse_fault_kinds(value)
                elif key == "seed":
                    typed[key] = int(value)
                else:
                    typed[key] = float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad value: {exc}") from exc
        return replace(self, **typed)

    def public(self) -> dict[str, Any]:
        """The JSON view returned by the admin endpoint."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["fault_kinds"] = list(self.fault_kinds)
        out["knowledge"] = list(self.knowledge)
        return out


def parse_fault_kinds(value: str | Iterable[Any]) -> tuple[str, ...]:
    """Accept ``"429,timeout"`` or ``["429", "timeout"]`` (numbers allowed)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    kinds = tuple(str(item).strip() for item in items if str(item).strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown or not kinds:
        raise ConfigError(f"fault kinds {unknown or kinds} not in {list(FAULT_KINDS)}")
    return kinds
