"""``react``: reason-and-act. Each step the LM picks a registered tool (or ``finish``) with
arguments; the observation joins the trajectory; a final chain-of-thought call extracts the
stage's outputs from the trajectory. Params: ``tools`` (names), ``max_iters`` (default 5)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Literal

from ..errors import DSPExError, ProgramError
from ..lm import Usage
from ..runtime import Tool
from ..signature import FieldSpec, Signature
from ._base import StageCall, StageResult, TraceEntry, lm_predict
from .predict import with_reasoning

FINISH = "finish"
MAX_ITERS_LIMIT = 50
TRAJECTORY = FieldSpec("trajectory", str, "What you have done and observed so far.")


@lru_cache(maxsize=256)
def _step_signature(
    base: Signature, names: tuple[str, ...], tool_lines: tuple[str, ...]
) -> Signature:
    outputs = (
        FieldSpec("next_thought", str, "Your reasoning about what to do next."),
        FieldSpec("next_tool_name", Literal.__getitem__((*names, FINISH)), ""),
        FieldSpec("next_tool_args", dict[str, Any], "Arguments for the tool, as JSON."),
    )
    outs = ", ".join(f"`{f.name}`" for f in base.outputs)
    instructions = "\n".join(
        [
            base.instructions,
            "",
            f"You work towards producing {outs}. In each step, think, then pick one tool and "
            f"its arguments; you will see its result. Pick `{FINISH}` (with empty "
            "arguments) once you have what you need. Tools:",
            *tool_lines,
            f"- `{FINISH}`: signals that the task is complete.",
        ]
    )
    return Signature((*base.inputs, TRAJECTORY), outputs, instructions)


@lru_cache(maxsize=256)
def _extract_signature(base: Signature) -> Signature:
    return with_reasoning(base.append_input(TRAJECTORY).with_instructions(base.instructions))


async def react(call: StageCall) -> StageResult:
    tool_names = list(call.param("tools", []))
    if not tool_names:
        raise ProgramError(f"react stage {call.stage!r} needs params.tools (tool names)")
    max_iters = int(call.param("max_iters", 5))
    if not 1 <= max_iters <= MAX_ITERS_LIMIT:
        raise ProgramError(f"react stage {call.stage!r}: max_iters must be 1..{MAX_ITERS_LIMIT}")
    tools = {name: call.runtime.tool(name) for name in tool_names}
    step_sig = _step_signature(
        call.signature, tuple(tools), tuple(_describe(t) for t in tools.values())
    )
    steps: list[str] = []
    trace: list[TraceEntry] = []
    usage = Usage()
    for i in range(max_iters):
        inputs = {**call.inputs, "trajectory": "\n".join(steps)}
        choice, entry = await lm_predict(call, step_sig, inputs, demos=())
        trace.append(entry)
        usage = usage + entry.usage
        name, args = choice["next_tool_name"], choice["next_tool_args"] or {}
        steps += [
            f"thought_{i}: {choice['next_thought']}",
            f"tool_name_{i}: {name}",
            f"tool_args_{i}: {json.dumps(args, ensure_ascii=False)}",
        ]
        if name == FINISH:
            steps.append(f"observation_{i}: Completed.")
            break
        steps.append(f"observation_{i}: {await _observe(tools[name], args)}")
    inputs = {**call.inputs, "trajectory": "\n".join(steps)}
    outputs, entry = await lm_predict(call, _extract_signature(call.signature), inputs)
    trace.append(entry)
    return StageResult(outputs, trace, usage + entry.usage)


def _describe(tool: Tool) -> str:
    args = ", ".join(f"{k}: {v}" for k, v in tool.args.items())
    return f"- `{tool.name}`({args}): {tool.description or 'no description'}"


async def _observe(tool: Tool, args: dict[str, Any]) -> str:
    """Run the tool; its failure becomes an observation the LM can react to."""
    try:
        result = await tool(**args)
    except DSPExError as e:
        return f"Error: {e.message}"
    text = result if isinstance(result, str) else json.dumps(result, default=str)
    return text[:4000]
