"""The runtime's own Prometheus metrics (beside FastStream's): messages handled by outcome,
dead letters by reason, and handler duration. Labels never carry ids."""

from __future__ import annotations

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
)

OUTCOMES = ("ok", "retried", "dead_lettered", "failed")

# Handlers range from sub-millisecond (decode and publish) to minutes (LM programs).
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


def new_registry() -> CollectorRegistry:
    """A registry of its own (tests run several services in one process) that still exports
    the process, platform and GC metrics of the default one."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


class RuntimeMetrics:
    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.handled = Counter(
            "dspex_messages_handled",
            "Messages handled, by outcome: ok, retried, dead_lettered, failed.",
            ["service", "subject", "outcome"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "dspex_dead_letters",
            "Messages given up on and published to the dead-letter subject, by reason.",
            ["service", "subject", "reason"],
            registry=registry,
        )
        self.duration = Histogram(
            "dspex_handler_duration_seconds",
            "Time spent in a message handler, decoding included.",
            ["service", "subject"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )

    def count(self, subject: str, outcome: str) -> None:
        self.handled.labels(self.service, subject, outcome).inc()

    def dead_lettered(self, subject: str, reason: str) -> None:
        self.dead_letters.labels(self.service, subject, reason).inc()

    def observe(self, subject: str, seconds: float) -> None:
        self.duration.labels(self.service, subject).observe(seconds)
