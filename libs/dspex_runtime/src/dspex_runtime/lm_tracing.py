"""LM calls as OpenTelemetry spans: one CLIENT span per finished ``LMClient.complete``,
a child of whatever span was current when the call was made (the handling of an
ExecuteRequested, of a CandidateProposed...), so a trace follows a request into its LM
calls. Fed by the kernel's ``LMClient`` observer hook, like the LM metrics; the span is
recorded when the call has finished, with its real start time."""

from __future__ import annotations

import time

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from dspex_kernel import LMCall

from .telemetry import TRACER_NAME

__all__ = ["LM_SPAN_NAME", "LMTracing"]

LM_SPAN_NAME = "lm.complete"


class LMTracing:
    """Pass :meth:`observe` to ``LMClient(observers=...)``. Attributes follow the
    OpenTelemetry GenAI conventions where they exist (``gen_ai.request.model``,
    ``gen_ai.usage.input_tokens`` / ``output_tokens``) plus ``dspex.lm.cached``,
    ``dspex.lm.cost_usd`` and ``dspex.lm.error_code``; a failed call has status ERROR."""

    def __init__(self, tracer_provider: trace.TracerProvider) -> None:
        self._tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)

    def observe(self, call: LMCall) -> None:
        end = time.time_ns()
        start = end - int(call.latency_s * 1e9)
        span = self._tracer.start_span(LM_SPAN_NAME, kind=SpanKind.CLIENT, start_time=start)
        span.set_attribute("gen_ai.request.model", call.model)
        span.set_attribute("gen_ai.usage.input_tokens", call.usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", call.usage.completion_tokens)
        span.set_attribute("dspex.lm.cost_usd", call.usage.cost_usd)
        if call.cache_hit is not None:
            span.set_attribute("dspex.lm.cached", call.cache_hit)
        if call.error_code is not None:
            span.set_attribute("dspex.lm.error_code", call.error_code)
            span.set_status(Status(StatusCode.ERROR, call.error_code))
        span.end(end_time=end)
