"""Calls a strategy makes to a *prompt model* (writing rules, proposing instructions,
summarising data): a signature rendered by the chat adapter, sent through ``ctx.lm`` (so it
is numbered, recorded, replayed, budgeted and cached like every other call) and parsed
back. A reply that cannot be parsed is not an error of the run: the strategy skips that
proposal, as it would skip a useless one."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..adapters import get_adapter
from ..config import plan
from ..errors import AdapterParseError
from ..lm import LMRequest
from ..program import ProgramSpec
from ..signature import FieldSpec, Signature, type_label
from ._base import StrategyContext, StrategyParamsError

DEFAULT_PROMPT_TEMPERATURE = 0.7
MAX_VALUE_CHARS = 2_000  # longer input values are cut when shown to the prompt model


def prompt_model(ctx: StrategyContext) -> str:
    """The ``prompt_model`` parameter, else the model of the program's first stage that
    names one, else "" (the LM backend's default model: the operator's, or the runtime's)."""
    chosen = ctx.param("prompt_model", None)
    if chosen is not None:
        if not isinstance(chosen, str) or not chosen:
            raise StrategyParamsError("parameter 'prompt_model' must be a model name")
        return chosen
    for planned in plan(ctx.spec):
        model = planned.config.get("model")
        if isinstance(model, str) and model:
            return model
    return ""


def signature(
    instructions: str,
    inputs: Sequence[tuple[str, str]],
    outputs: Sequence[tuple[str, str]],
    *,
    output_types: Mapping[str, Any] | None = None,
) -> Signature:
    """A signature from (name, description) pairs; outputs are ``str`` unless typed."""
    types = output_types or {}
    return Signature(
        tuple(FieldSpec(n, str, d) for n, d in inputs),
        tuple(FieldSpec(n, types.get(n, str), d) for n, d in outputs),
        instructions,
    )


async def ask(
    ctx: StrategyContext,
    sig: Signature,
    inputs: Mapping[str, Any],
    *,
    model: str,
    temperature: float = DEFAULT_PROMPT_TEMPERATURE,
) -> dict[str, Any] | None:
    """One prompt-model call; the parsed outputs, or None when the reply does not parse."""
    adapter = get_adapter("chat")
    shown = {k: shorten(v) for k, v in inputs.items()}
    request = LMRequest(
        model=model,
        messages=adapter.format(sig, (), shown),
        temperature=temperature,
        response_format=adapter.request_params(sig).get("response_format"),
    )
    response = await ctx.lm(request)
    try:
        return adapter.parse(sig, response.text)
    except AdapterParseError:
        return None


def shorten(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """A value as prompt text (JSON for structures), cut to ``limit`` characters."""
    if isinstance(value, str):
        text = value
    else:  # sorted keys: the same prompt whatever order a dataset store kept a row's keys in
        text = json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_program(spec: ProgramSpec) -> str:
    """The program as a prompt model should see it: its description, then each stage's
    module kind, fields and instructions."""
    lines = [f"Program {spec.name!r}: {spec.description or '(no description)'}"]
    for planned in plan(spec):
        sig = planned.signature
        ins = ", ".join(_field_text(f) for f in sig.inputs)
        outs = ", ".join(_field_text(f) for f in sig.outputs)
        lines.append(f"- stage {planned.name!r} ({planned.module}): {ins} -> {outs}")
        lines.append(f"  instructions: {sig.instructions}")
    return "\n".join(lines)


def _field_text(f: FieldSpec) -> str:
    text = f.name if f.annotation is str else f"{f.name}: {type_label(f.annotation)}"
    return f"{text} ({f.description})" if f.description else text
