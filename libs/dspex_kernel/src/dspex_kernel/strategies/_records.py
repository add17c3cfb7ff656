"""The run log's records: evaluations and LM responses as JSON-ready dicts and back. The
round trip is exact (floats unrounded, usage with cached calls, outcomes with their errors
and traces), because a replayed run must see precisely what the first run saw."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

from pydantic_core import to_jsonable_python

from ..lm import LMResponse, Usage
from ._base import Evaluation, ExampleOutcome, Split

Record = dict[str, Any]


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (tuples become lists, models become dicts)."""
    return to_jsonable_python(value, fallback=str)


def canonical(overrides: Mapping[str, Any]) -> str:
    """One string per distinct configuration (keys sorted), to compare or dedupe them."""
    return json.dumps(jsonable(dict(overrides)), sort_keys=True, separators=(",", ":"))


def usage_to_record(usage: Usage) -> Record:
    # Not Usage.to_dict(): that rounds the cost, and a replay must add up to the same total.
    return {
        "calls": usage.calls,
        "cached_calls": usage.cached_calls,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cost_usd": usage.cost_usd,
    }


def usage_from_record(data: Mapping[str, Any]) -> Usage:
    return Usage(
        int(data.get("calls", 0)),
        int(data.get("cached_calls", 0)),
        int(data.get("prompt_tokens", 0)),
        int(data.get("completion_tokens", 0)),
        float(data.get("cost_usd", 0.0)),
    )


def evaluation_request(
    overrides: Mapping[str, Any], split: Split, indices: tuple[int, ...], want_traces: bool
) -> Record:
    """What identifies an evaluate call; a replayed record must match it."""
    return {
        "kind": "evaluate",
        "overrides": jsonable(dict(overrides)),
        "split": split,
        "indices": list(indices),
        "want_traces": want_traces,
    }


def evaluation_to_record(evaluation: Evaluation, *, want_traces: bool = False) -> Record:
    outcomes = [
        {
            "index": o.index,
            "score": o.score,
            "outputs": jsonable(dict(o.outputs)),
            "error": None if o.error is None else jsonable(dict(o.error)),
            "trace": jsonable([dict(t) for t in o.trace]),
        }
        for o in evaluation.outcomes
    ]
    return {
        **evaluation_request(
            evaluation.overrides, evaluation.split, evaluation.indices, want_traces
        ),
        "call": evaluation.call,
        "score": evaluation.score,
        "usage": usage_to_record(evaluation.usage),
        "outcomes": outcomes,
        "reused": evaluation.reused,
    }


def evaluation_from_record(record: Mapping[str, Any]) -> Evaluation:
    outcomes = tuple(
        ExampleOutcome(
            index=int(o["index"]),
            score=float(o["score"]),
            outputs=dict(o.get("outputs") or {}),
            error=None if o.get("error") is None else dict(o["error"]),
            trace=tuple(dict(t) for t in o.get("trace") or ()),
        )
        for o in record.get("outcomes", ())
    )
    return Evaluation(
        call=int(record["call"]),
        overrides=dict(record.get("overrides") or {}),
        split=cast(Split, record["split"]),
        indices=tuple(int(i) for i in record["indices"]),
        score=float(record["score"]),
        outcomes=outcomes,
        usage=usage_from_record(record.get("usage") or {}),
        reused=int(record.get("reused", 0)),
    )


def lm_response_to_record(call: int, request_key: str, response: LMResponse) -> Record:
    return {
        "kind": "lm",
        "call": call,
        "request_key": request_key,
        "text": response.text,
        "model": response.model,
        "usage": usage_to_record(response.usage),
        "latency_s": response.latency_s,
        "cached": response.cached,
        "finish_reason": response.finish_reason,
    }


def lm_response_from_record(record: Mapping[str, Any]) -> LMResponse:
    return LMResponse(
        text=str(record["text"]),
        model=str(record["model"]),
        usage=usage_from_record(record.get("usage") or {}),
        latency_s=float(record.get("latency_s", 0.0)),
        cached=bool(record.get("cached", False)),
        finish_reason=record.get("finish_reason"),
    )
