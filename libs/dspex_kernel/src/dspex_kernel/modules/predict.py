"""``predict`` and ``chain_of_thought``: one LM call for the stage's signature; chain of
thought asks for a ``reasoning`` field before the outputs."""

from __future__ import annotations

from functools import lru_cache

from ..signature import FieldSpec, Signature
from ._base import StageCall, StageResult, lm_predict

REASONING = FieldSpec("reasoning", str, "")


async def predict(call: StageCall) -> StageResult:
    outputs, entry = await lm_predict(call, call.signature, call.inputs)
    return StageResult(outputs, [entry], entry.usage)


@lru_cache(maxsize=1024)
def with_reasoning(signature: Signature) -> Signature:
    """The signature with a leading ``reasoning`` output, as DSPy's ChainOfThought has."""
    if "reasoning" in signature.output_names:
        return signature
    return signature.prepend_output(REASONING).with_instructions(signature.instructions)


async def chain_of_thought(call: StageCall) -> StageResult:
    outputs, entry = await lm_predict(call, with_reasoning(call.signature), call.inputs)
    return StageResult(outputs, [entry], entry.usage)
