"""``best_of_n`` and ``refine``: run the stage up to ``n`` times at a non-zero temperature
and keep the first attempt whose reward reaches ``threshold`` (else the best). ``refine``
also asks the LM for advice after each failed attempt and shows it to the next one.
Params: ``n`` (default 3), ``reward`` (a registered reward name, required),
``threshold`` (default 1.0), ``inner`` (``predict`` or ``chain_of_thought``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..errors import ProgramError
from ..lm import Usage
from ..signature import FieldSpec, Signature, parse_signature
from ._base import StageCall, StageResult, TraceEntry, lm_predict
from .predict import with_reasoning

HINT = FieldSpec("hint_", str, "Advice from an earlier attempt.")
ADVICE = parse_signature(
    "program_inputs, program_outputs, reward: float -> advice",
    "An attempt at a task scored below the target reward. Study the inputs, the "
    "outputs and the reward, and write concise advice that would help the next attempt "
    "score higher.",
)
MAX_N = 16


def _attempt_signature(call: StageCall) -> Signature:
    inner = call.param("inner", "predict")
    if inner not in ("predict", "chain_of_thought"):
        raise ProgramError(f"stage {call.stage!r}: inner must be predict or chain_of_thought")
    return with_reasoning(call.signature) if inner == "chain_of_thought" else call.signature


async def _search(call: StageCall, *, with_advice: bool) -> StageResult:
    n = int(call.param("n", 3))
    if not 1 <= n <= MAX_N:
        raise ProgramError(f"stage {call.stage!r}: n must be 1..{MAX_N}")
    reward_name = call.param("reward", None)
    if not reward_name:
        raise ProgramError(f"{call.module} stage {call.stage!r} needs params.reward")
    reward = call.runtime.reward(str(reward_name))
    threshold = float(call.param("threshold", 1.0))
    temperature = call.config.get("temperature") or 1.0
    signature = _attempt_signature(call)
    trace: list[TraceEntry] = []
    usage = Usage()
    best: tuple[float, dict[str, Any]] | None = None
    advice = ""
    for attempt in range(n):
        sig, inputs = signature, dict(call.inputs)
        if advice:
            sig, inputs = signature.append_input(HINT), {**inputs, "hint_": advice}
        outputs, entry = await lm_predict(
            call, sig, inputs, temperature=temperature, extra={"rollout_id": attempt}
        )
        trace.append(entry)
        usage = usage + entry.usage
        score = float(reward(call.inputs, outputs))
        if best is None or score > best[0]:
            best = (score, outputs)
        if score >= threshold:
            break
        if with_advice and attempt + 1 < n:
            advice, entry = await _advise(call, outputs, score)
            trace.append(entry)
            usage = usage + entry.usage
    assert best is not None
    return StageResult(best[1], trace, usage)


async def _advise(
    call: StageCall, outputs: Mapping[str, Any], score: float
) -> tuple[str, TraceEntry]:
    inputs = {
        "program_inputs": json.dumps(dict(call.inputs), default=str, ensure_ascii=False),
        "program_outputs": json.dumps(dict(outputs), default=str, ensure_ascii=False),
        "reward": score,
    }
    result, entry = await lm_predict(call, ADVICE, inputs, demos=())
    return str(result["advice"]), entry


async def best_of_n(call: StageCall) -> StageResult:
    return await _search(call, with_advice=False)


async def refine(call: StageCall) -> StageResult:
    return await _search(call, with_advice=True)
