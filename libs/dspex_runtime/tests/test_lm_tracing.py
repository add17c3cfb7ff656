"""LM calls as spans: one CLIENT span per call, in the current trace, with its real start
time, its model, tokens and cost, and status ERROR when the call failed."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from dspex_kernel import LMCall, Usage
from dspex_runtime.lm_tracing import LM_SPAN_NAME, LMTracing
from dspex_runtime.telemetry import start_span

pytestmark = pytest.mark.unit


def test_lm_calls_become_child_spans_with_their_usage_and_errors() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = LMTracing(provider)
    with start_span("handling a request", tracer_provider=provider) as parent:
        tracing.observe(LMCall("openai/m", 0.25, Usage(1, 0, 12, 3, 0.002), cache_hit=False))
        tracing.observe(LMCall("openai/m", 0.01, error_code="lm_rate_limited"))
    ok, failed, outer = exporter.get_finished_spans()
    assert outer.name == "handling a request"
    for span in (ok, failed):
        assert span.name == LM_SPAN_NAME
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None
        assert span.parent.span_id == parent.get_span_context().span_id
    assert ok.end_time is not None
    assert ok.start_time is not None
    assert ok.end_time - ok.start_time == pytest.approx(0.25e9, rel=0.01)
    assert dict(ok.attributes or {}) == {
        "gen_ai.request.model": "openai/m",
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 3,
        "dspex.lm.cost_usd": 0.002,
        "dspex.lm.cached": False,
    }
    assert ok.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["dspex.lm.error_code"] == "lm_rate_limited"
