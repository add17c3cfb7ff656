"""The kernel service's Prometheus metrics: program executions by program and outcome, and
how long they took. Labels carry program names, never request ids."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from dspex_runtime.metrics import DURATION_BUCKETS

__all__ = ["OUTCOMES", "UNRESOLVED", "ExecutionMetrics"]

OUTCOMES = ("completed", "failed", "retried")

# The program label of a request whose program was not found or could not be read: its
# requested name is the sender's to choose, so it is not a label. Program names start with
# a letter or digit, so this one cannot be a program's.
UNRESOLVED = "(unresolved)"


class ExecutionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.executions = Counter(
            "dspex_kernel_executions",
            "Program executions, by program and outcome: completed, failed (answered "
            "ExecuteFailed or given up on), retried (a transient error; redelivered).",
            ["program", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "dspex_kernel_execution_duration_seconds",
            "Time to resolve and execute a program, LM calls included, by program and outcome.",
            ["program", "outcome"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )

    def executed(self, program: str, outcome: str, seconds: float) -> None:
        self.executions.labels(program, outcome).inc()
        self.duration.labels(program, outcome).observe(seconds)
