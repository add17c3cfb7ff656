"""``retrieve``: fills the stage's one output field with passages from a named retriever.
No LM call. Params: ``retriever`` (default ``"default"``), ``k`` (default 3)."""

from __future__ import annotations

import time

from ..errors import ProgramError
from ..lm import Usage
from ._base import StageCall, StageResult, TraceEntry


async def retrieve(call: StageCall) -> StageResult:
    if len(call.signature.outputs) != 1:
        raise ProgramError(f"retrieve stage {call.stage!r} must have exactly one output field")
    query = " ".join(str(v) for v in call.inputs.values())
    k = int(call.param("k", 3))
    retriever = call.runtime.retriever(str(call.param("retriever", "default")))
    started = time.perf_counter()
    passages = await retriever.search(query, k)
    outputs = {call.signature.outputs[0].name: passages}
    entry = TraceEntry(
        stage=call.stage,
        module=call.module,
        inputs=dict(call.inputs),
        outputs=outputs,
        latency_s=time.perf_counter() - started,
    )
    return StageResult(outputs, [entry], Usage())
