"""Mutable server state: the live configuration, the seeded fault and latency draws, and the
counters behind ``GET /admin/stats``."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import SimConfig
from .knowledge import KnowledgeBase


@dataclass
class Stats:
    requests_total: int = 0
    requests_by_model: Counter[str] = field(default_factory=Counter)
    responses_by_status: Counter[str] = field(default_factory=Counter)
    faults_injected: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    in_flight: int = 0
    max_in_flight: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "requests_by_model": dict(self.requests_by_model),
            "responses_by_status": dict(self.responses_by_status),
            "faults_injected": dict(self.faults_injected),
            "faults_total": sum(self.faults_injected.values()),
            "answers": dict(self.answers),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }


class ServerState:
    """Faults are drawn from ``random.Random(seed)`` in arrival order, independent of the
    request content, so a retried request can succeed."""

    def __init__(self, config: SimConfig, knowledge: KnowledgeBase) -> None:
        self.config = config
        self.knowledge = knowledge
        self.stats = Stats()
        self._reseed(config.seed)

    def _reseed(self, seed: int) -> None:
        self._fault_rng = random.Random(seed)
        # A separate stream, so that changing the jitter does not change which requests fault.
        self._latency_rng = random.Random(seed + 1)

    def reconfigure(self, changes: Mapping[str, Any]) -> SimConfig:
        self.config = self.config.with_changes(changes)
        if "seed" in changes:
            self._reseed(self.config.seed)
        return self.config

    def draw_fault(self) -> str | None:
        rate = self.config.fault_rate
        if rate <= 0 or self._fault_rng.random() >= rate:
            return None
        return self._fault_rng.choice(self.config.fault_kinds)

    def draw_latency_s(self) -> float:
        jitter = self.config.latency_jitter_ms * self._latency_rng.random()
        return (self.config.latency_ms + jitter) / 1000.0

    def reset_stats(self) -> None:
        self.stats = Stats(in_flight=self.stats.in_flight)
