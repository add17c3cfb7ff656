"""Prometheus metrics of a service's LM calls, by model: calls, provider tokens, cost,
latency, errors by code and cache lookups. Fed by the kernel's ``LMClient`` observer hook,
so that the kernel library itself never imports a metrics package."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from dspex_kernel import LMCall

__all__ = ["LATENCY_BUCKETS", "LMMetrics"]

# From a cache hit (sub-millisecond) to a slow completion with retries (minutes).
LATENCY_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class LMMetrics:
    """Pass :meth:`observe` to ``LMClient(observers=...)``. Labels: ``service`` and
    ``model`` (the model string of the request: operators' settings and program
    configurations name a handful), plus ``code`` of errors, ``kind`` of tokens and
    ``result`` of cache lookups; never a run or request id."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.calls = Counter(
            "dspex_lm_calls",
            "Calls to the LM client, cache hits and failures included.",
            ["service", "model"],
            registry=registry,
        )
        self.errors = Counter(
            "dspex_lm_errors",
            "LM calls that failed (after retries), by error code.",
            ["service", "model", "code"],
            registry=registry,
        )
        self.tokens = Counter(
            "dspex_lm_tokens",
            "Tokens exchanged with providers, by kind: prompt or completion (cache hits "
            "not counted).",
            ["service", "model", "kind"],
            registry=registry,
        )
        self.cost = Counter(
            "dspex_lm_cost_usd",
            "What LM calls cost, in US dollars (a cache hit costs nothing).",
            ["service", "model"],
            registry=registry,
        )
        self.cache = Counter(
            "dspex_lm_cache_lookups",
            "Response cache lookups, by result: hit or miss.",
            ["service", "model", "result"],
            registry=registry,
        )
        self.latency = Histogram(
            "dspex_lm_call_duration_seconds",
            "Time from asking the LM client to its answer or error, retries included.",
            ["service", "model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def observe(self, call: LMCall) -> None:
        service, model = self.service, call.model
        self.calls.labels(service, model).inc()
        self.latency.labels(service, model).observe(call.latency_s)
        if call.cache_hit is not None:
            self.cache.labels(service, model, "hit" if call.cache_hit else "miss").inc()
        if call.error_code is not None:
            self.errors.labels(service, model, call.error_code).inc()
            return
        if not call.cache_hit:
            usage = call.usage
            self.tokens.labels(service, model, "prompt").inc(usage.prompt_tokens)
            self.tokens.labels(service, model, "completion").inc(usage.completion_tokens)
        self.cost.labels(service, model).inc(max(call.usage.cost_usd, 0.0))
