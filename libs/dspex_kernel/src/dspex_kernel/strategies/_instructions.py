"""Grounded instruction proposals for the ``mipro`` strategy: a short summary of the
training data, then new instructions per LM stage written by a prompt model that sees the
data summary, the program, demos of the stage at work, the instructions proposed so far and
a randomly chosen tip. A reply that does not parse, is empty, repeats a candidate or breaks
the stage's length limit is skipped."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..program import ProgramSpec
from ..variables import TextVar
from ._base import StrategyContext
from ._prompting import ask, describe_program, shorten, signature

MAX_INSTRUCTION_CHARS = 20_000  # StageConfig's own limit
DEMO_VALUE_CHARS = 400

TIPS = (
    "",  # no tip: let the data and the demos speak
    "Keep it short: a few plain sentences that cannot be misread.",
    "Be inventive: take an angle the current instruction does not.",
    "Say how to handle the unusual or tricky cases the examples hint at.",
    "State exactly what a good output looks like: its form, its detail, what to leave out.",
    "Ask for a methodical approach, with the result checked before it is given.",
    "Give the model a role or expertise that fits the task.",
)

_OBSERVE = signature(
    "Below are examples from a dataset. Note what holds for most or all of them: topic, "
    "form and length of inputs and outputs, style, and what the task they serve demands.",
    [("examples", "Examples from the dataset, one per block.")],
    [("observations", "The patterns you notice, as a short list.")],
)
_SUMMARIZE = signature(
    "Merge these notes about a dataset into two or three sentences that keep only what "
    "matters most for doing its task well.",
    [("observations", "Notes made over several samples of the dataset.")],
    [("summary", "A two- or three-sentence summary of the dataset.")],
)
_PROPOSE = signature(
    "You write the instruction for one step of a program that calls a language model. "
    "Learn the task from the material below, then write an instruction that will make the "
    "model do this step better than the current one does.",
    [
        ("data_summary", "What the training data looks like."),
        ("program_description", "The program: its purpose and its steps."),
        ("step", "The step to write an instruction for: its name, inputs and outputs."),
        ("examples", "Worked examples of this step: inputs with the outputs wanted."),
        ("current_instruction", "The step's instruction today."),
        ("previous_proposals", "Instructions already proposed for this step; differ from them."),
        ("tip", "A suggestion for this proposal."),
    ],
    [("proposed_instruction", "The new instruction, ready to use as it stands.")],
)


@dataclass(frozen=True, slots=True)
class ProposalStage:
    """An LM stage whose instruction is searched: its current instruction and its demos
    (each list one candidate set) to show the prompt model."""

    name: str
    instruction: str
    fields: str
    demo_sets: Sequence[Sequence[Mapping[str, Any]]]


def proposal_calls(n_stages: int, per_stage: int, summary_batches: int) -> int:
    """The most LM calls :func:`summarize_data` and :func:`propose` make together (none
    when no instruction is proposed)."""
    if per_stage < 1:
        return 0
    return (summary_batches + 1 if summary_batches else 0) + n_stages * per_stage


async def summarize_data(ctx: StrategyContext, model: str, batches: int, batch_size: int) -> str:
    """Observations over ``batches`` random samples of the trainset (asked concurrently),
    merged by one more call; "" when ``batches`` is 0 or nothing parsed."""
    if batches == 0 or not ctx.trainset:
        return ""
    count = min(len(ctx.trainset), batches * batch_size)
    chosen = ctx.rng.sample(range(len(ctx.trainset)), count)
    groups = [chosen[i : i + batch_size] for i in range(0, count, batch_size)]
    fields = _data_fields(ctx.spec)
    replies = await asyncio.gather(
        *(
            ask(ctx, _OBSERVE, {"examples": _examples_text(ctx, group, fields)}, model=model)
            for group in groups
        )
    )
    notes = [str(r["observations"]).strip() for r in replies if r and r.get("observations")]
    if not notes:
        return ""
    if len(notes) == 1:
        return notes[0]
    merged = await ask(ctx, _SUMMARIZE, {"observations": "\n\n".join(notes)}, model=model)
    return str(merged["summary"]).strip() if merged and merged.get("summary") else notes[0]


async def propose(
    ctx: StrategyContext,
    stages: Sequence[ProposalStage],
    *,
    model: str,
    per_stage: int,
    data_summary: str,
    temperature: float,
    tips: random.Random,
) -> tuple[dict[str, list[str]], int]:
    """Up to ``per_stage`` new instructions for each stage (the current one comes first in
    each list) and the number of replies skipped. Round ``j`` asks for every stage's
    ``j``-th proposal at once; within a stage the proposals are sequential, each seeing
    the ones before it."""
    program = describe_program(ctx.spec)
    candidates = {s.name: [s.instruction] for s in stages}
    limits = {s.name: _length_limit(ctx.spec, s.name) for s in stages}
    skipped = 0
    for j in range(1, per_stage + 1):
        # Hotter as the round goes on: early proposals stay close, later ones explore; it
        # also makes every request of a stage distinct, so no cache repeats a reply.
        heat = round(temperature * (0.5 + 0.5 * j / per_stage), 4)
        requests = [
            {
                "data_summary": data_summary or "Not available.",
                "program_description": program,
                "step": f"{s.name}: {s.fields}",
                "examples": _demos_text(s.demo_sets, j - 1),
                "current_instruction": s.instruction,
                "previous_proposals": _history(candidates[s.name][1:]),
                "tip": tips.choice(TIPS) or "None.",
            }
            for s in stages
        ]
        replies = await asyncio.gather(
            *(ask(ctx, _PROPOSE, r, model=model, temperature=heat) for r in requests)
        )
        for stage, reply in zip(stages, replies, strict=True):
            text = _clean(reply.get("proposed_instruction") if reply else None)
            if text and text not in candidates[stage.name] and len(text) <= limits[stage.name]:
                candidates[stage.name].append(text)
            else:
                skipped += 1
    return candidates, skipped


def _clean(value: Any) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def _length_limit(spec: ProgramSpec, stage: str) -> int:
    for var in spec.variables.variables:
        if isinstance(var, TextVar) and var.target == f"{stage}.instructions":
            return min(var.max_length, MAX_INSTRUCTION_CHARS)
    return MAX_INSTRUCTION_CHARS


def _history(proposals: Sequence[str]) -> str:
    if not proposals:
        return "None yet."
    return "\n".join(f"{i}. {p}" for i, p in enumerate(proposals, start=1))


def _demos_text(
    demo_sets: Sequence[Sequence[Mapping[str, Any]]], start: int, limit: int = 3
) -> str:
    """Up to ``limit`` demos from candidate set ``start`` (mod their number), then from the
    sets after it, so that each proposal sees other demos."""
    shown: list[str] = []
    n = len(demo_sets)
    for k in range(n):
        for demo in demo_sets[(start + k) % n]:
            if len(shown) == limit:
                break
            shown.append(_fields_text(demo))
    return "\n\n".join(shown) if shown else "No examples available."


def _examples_text(ctx: StrategyContext, indices: Sequence[int], fields: Sequence[str]) -> str:
    """The examples' values in the signatures' field order (never the rows' own key order,
    which a dataset store may change), or all of a row's keys, sorted, if it has none."""
    blocks = []
    for i in indices:
        example = ctx.trainset[i]
        shown = {k: example[k] for k in fields if k in example}
        blocks.append(_fields_text(shown or {k: example[k] for k in sorted(example)}))
    return "\n\n".join(blocks)


def _fields_text(values: Mapping[str, Any]) -> str:
    return "\n".join(f"{k}: {shorten(v, DEMO_VALUE_CHARS)}" for k, v in values.items())


def _data_fields(spec: ProgramSpec) -> list[str]:
    """The field names the program's signatures use (rows may carry other metadata), in
    their order of first use."""
    names = (f.name for sig in spec.signatures.values() for f in sig.fields)
    return list(dict.fromkeys(names))
