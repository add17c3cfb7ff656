"""What every module shares: the call a stage receives, the result it returns, trace
entries, and ``lm_predict`` — one signature-shaped LM call through an adapter."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..adapters import JSONAdapter, get_adapter
from ..errors import AdapterParseError, ConfigurationError
from ..lm import LMRequest, Usage
from ..runtime import Runtime
from ..signature import Signature


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One LM call (or retrieval/tool step) of a stage: what went in and came out."""

    stage: str
    module: str
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    model: str = ""
    adapter: str = ""
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    cached: bool = False
    completion: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "module": self.module,
            "inputs": dict(self.inputs),
            "outputs": dict(self.outputs),
            "model": self.model,
            "adapter": self.adapter,
            "usage": self.usage.to_dict(),
            "latency_s": round(self.latency_s, 6),
            "cached": self.cached,
        }


@dataclass(frozen=True, slots=True)
class StageCall:
    """Everything a module needs to run one stage. ``config`` is the effective stage
    configuration (defaults, stage settings and overrides merged)."""

    stage: str
    module: str
    signature: Signature
    inputs: Mapping[str, Any]
    config: Mapping[str, Any]
    params: Mapping[str, Any]
    runtime: Runtime

    @property
    def demos(self) -> Sequence[Mapping[str, Any]]:
        demos: Sequence[Mapping[str, Any]] = self.config.get("demos") or ()
        return demos

    def param(self, name: str, default: Any) -> Any:
        return self.params.get(name, default)


@dataclass(frozen=True, slots=True)
class StageResult:
    outputs: dict[str, Any]
    trace: list[TraceEntry]
    usage: Usage


ModuleFn = Callable[[StageCall], Awaitable[StageResult]]


async def lm_predict(
    call: StageCall,
    signature: Signature,
    inputs: Mapping[str, Any],
    *,
    demos: Sequence[Mapping[str, Any]] | None = None,
    temperature: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], TraceEntry]:
    """Format, call the LM, parse. A chat-format parse error falls back to the JSON
    adapter once; a second failure raises ``AdapterParseError``."""
    config = call.config
    model = config.get("model") or call.runtime.model
    if not model:
        raise ConfigurationError(
            f"stage {call.stage!r} has no model: set configuration.defaults.model, the "
            "stage's model, or the runtime's default model"
        )
    adapter = get_adapter(config.get("adapter") or "chat")
    if temperature is None:
        temperature = config.get("temperature")
    shown_demos = call.demos if demos is None else demos
    started = time.perf_counter()
    usage = Usage()
    try:
        outputs, response = await _ask(
            call, adapter, signature, inputs, shown_demos, model, temperature, extra
        )
        usage = usage + response.usage
    except AdapterParseError as first:
        usage = usage + first.usage if isinstance(first, _ParseWithUsage) else usage
        if adapter.name == "json":
            raise
        fallback = _JSON
        try:
            outputs, response = await _ask(
                call, fallback, signature, inputs, shown_demos, model, temperature, extra
            )
        except AdapterParseError as second:
            raise AdapterParseError(
                f"stage {call.stage!r}: the reply could not be parsed by the chat adapter "
                f"({first.message}) nor, on retry, by the JSON adapter ({second.message})",
                completion=second.completion,
                adapter="json",
            ) from second
        usage = usage + response.usage
        adapter = fallback
    entry = TraceEntry(
        stage=call.stage,
        module=call.module,
        inputs=dict(inputs),
        outputs=outputs,
        model=response.model or model,
        adapter=adapter.name,
        usage=usage,
        latency_s=time.perf_counter() - started,
        cached=response.cached,
        completion=response.text,
    )
    return outputs, entry


class _ParseWithUsage(AdapterParseError):
    """A parse error that remembers what the unparseable call cost."""

    def __init__(self, inner: AdapterParseError, usage: Usage) -> None:
        super().__init__(inner.message, completion=inner.completion, adapter=inner.adapter)
        self.usage = usage


_JSON = JSONAdapter()


async def _ask(
    call: StageCall,
    adapter: Any,
    signature: Signature,
    inputs: Mapping[str, Any],
    demos: Sequence[Mapping[str, Any]],
    model: str,
    temperature: float | None,
    extra: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], Any]:
    messages = adapter.format(signature, demos, inputs)
    params = adapter.request_params(signature)
    request = LMRequest(
        model=model,
        messages=messages,
        temperature=temperature,
        max_tokens=call.config.get("max_tokens"),
        response_format=params.get("response_format"),
        extra=extra or {},
    )
    response = await call.runtime.lm.complete(request)
    try:
        return adapter.parse(signature, response.text), response
    except AdapterParseError as e:
        raise _ParseWithUsage(e, response.usage) from e
