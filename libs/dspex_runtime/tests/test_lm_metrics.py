"""The Prometheus side of LM calls: an LMClient (with a scripted transport) tells LMMetrics
of each call, and the samples in a fresh registry say what happened, by model."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from dspex_kernel import Endpoint, InMemoryLRUCache, LMClient, LMRequest
from dspex_kernel.errors import LMBadRequestError, LMError
from dspex_kernel.lm import RawCompletion
from dspex_runtime.lm_metrics import LMMetrics

pytestmark = pytest.mark.unit

CHEAP, DEAR = "openai/sim-small", "openai/sim-large"


class ScriptedTransport:
    """Answers each model as scripted: a completion, or an error to raise."""

    def __init__(self, **by_model: RawCompletion | LMError) -> None:
        self.by_model = by_model

    async def __call__(self, req: LMRequest, endpoint: Endpoint, timeout_s: float) -> RawCompletion:
        outcome = self.by_model[req.model.replace("openai/sim-", "")]
        if isinstance(outcome, LMError):
            raise outcome
        return outcome


def request(model: str, content: str = "2 + 2?") -> LMRequest:
    return LMRequest(model, [{"role": "user", "content": content}])


async def no_sleep(seconds: float) -> None:
    return None


async def test_calls_tokens_cost_latency_errors_and_cache_by_model() -> None:
    registry = CollectorRegistry()
    metrics = LMMetrics(registry, "kernel")
    transport = ScriptedTransport(
        small=RawCompletion("4", "sim-small", 10, 2, "stop", 0.25),
        large=LMBadRequestError("prompt too long"),
    )
    lm = LMClient(
        transport=transport,
        cache=InMemoryLRUCache(),
        sleep=no_sleep,
        observers=[metrics.observe],
    )
    await lm.complete(request(CHEAP))
    await lm.complete(request(CHEAP))  # served from the cache
    with pytest.raises(LMBadRequestError):
        await lm.complete(request(DEAR))

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"service": "kernel", **labels})

    assert value("dspex_lm_calls_total", model=CHEAP) == 2
    assert value("dspex_lm_calls_total", model=DEAR) == 1
    assert value("dspex_lm_tokens_total", model=CHEAP, kind="prompt") == 10  # hits: not sent
    assert value("dspex_lm_tokens_total", model=CHEAP, kind="completion") == 2
    assert value("dspex_lm_cost_usd_total", model=CHEAP) == 0.25
    assert value("dspex_lm_cache_lookups_total", model=CHEAP, result="hit") == 1
    assert value("dspex_lm_cache_lookups_total", model=CHEAP, result="miss") == 1
    assert value("dspex_lm_cache_lookups_total", model=DEAR, result="miss") == 1
    assert value("dspex_lm_errors_total", model=DEAR, code="lm_bad_request") == 1
    assert value("dspex_lm_errors_total", model=CHEAP, code="lm_bad_request") is None
    assert value("dspex_lm_tokens_total", model=DEAR, kind="prompt") is None
    assert value("dspex_lm_call_duration_seconds_count", model=CHEAP) == 2
    assert value("dspex_lm_call_duration_seconds_count", model=DEAR) == 1


async def test_without_a_cache_no_lookups_are_counted() -> None:
    registry = CollectorRegistry()
    metrics = LMMetrics(registry, "optimizer")
    lm = LMClient(
        transport=ScriptedTransport(small=RawCompletion("4", "sim-small", 3, 1)),
        observers=[metrics.observe],
    )
    await lm.complete(request(CHEAP))
    labels = {"service": "optimizer", "model": CHEAP}
    assert registry.get_sample_value("dspex_lm_calls_total", labels) == 1
    assert registry.get_sample_value("dspex_lm_cost_usd_total", labels) == 0
    for result in ("hit", "miss"):
        assert (
            registry.get_sample_value("dspex_lm_cache_lookups_total", {**labels, "result": result})
            is None
        )
