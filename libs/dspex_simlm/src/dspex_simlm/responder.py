"""Turn one chat-completion request into reply texts: find the known row the prompt is about,
apply the skill model, and fill every requested output field."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .knowledge import KnowledgeBase, Row
from .prompt import Demo, OutputField, ParsedPrompt, parse_prompt
from .skill import (
    SkillFactors,
    answers_equal,
    correct_probability,
    count_hints,
    is_reasoning_field,
    sampling_key,
    stable_int,
    stable_unit,
    wrong_answer,
)
from .values import coerce, plausible, render, sentence

INSTRUCTION_FIELDS = frozenset(
    {"instruction", "instructions", "rule", "rules", "advice", "feedback"}
)
INSTRUCTION_SUFFIXES = tuple(f"_{name}" for name in sorted(INSTRUCTION_FIELDS))
# Each known hint appears in a proposed instruction with this probability (per hash draw).
HINT_PROPOSAL_RATE = 0.4
_LEADS = (
    "Read the {ins} carefully and produce the {outs}.",
    "Given the {ins}, determine the {outs}.",
    "Use the {ins} to find the correct {outs}.",
)
_HINT_FRAMES = ("Remember: {}.", "Important: {}.", "Keep this in mind: {}.")
_FILLERS = ("Be concise.", "Use the exact output format requested.", "State the result clearly.")
_REASONING_OPENERS = (
    "Let me work through this one piece at a time.",
    "Breaking the problem into parts.",
    "Working carefully through the details.",
)


@dataclass(frozen=True, slots=True)
class Reply:
    """Reply texts (one per choice) and how the first was decided, for the stats."""

    contents: tuple[str, ...]
    outcome: str  # "correct", "wrong", "unknown" (no known row) or "plain" (no structure)
    p_correct: float | None = None


def is_instruction_field(name: str) -> bool:
    lowered = name.lower()
    return lowered in INSTRUCTION_FIELDS or lowered.endswith(INSTRUCTION_SUFFIXES)


def text_messages(raw: Sequence[Any]) -> list[dict[str, str]]:
    """OpenAI messages with their content flattened to text (parts lists joined)."""
    out = []
    for message in raw:
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = "\n".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
        out.append({"role": str(message.get("role", "user")), "content": str(content or "")})
    return out


def answer_targets(fields: Sequence[OutputField], row: Row) -> dict[str, str]:
    """Output field name -> the row's answer field it asks for. Same names first; else a
    single-answer row maps onto the single non-reasoning, non-instruction output field."""
    direct = {f.name: f.name for f in fields if f.name in row.answers}
    if direct:
        return direct
    plain = [
        f.name
        for f in fields
        if not is_reasoning_field(f.name) and not is_instruction_field(f.name)
    ]
    if len(row.answers) == 1 and len(plain) == 1:
        return {plain[0]: next(iter(row.answers))}
    return {}


def demo_verdicts(
    demos: Sequence[Demo], fields: Sequence[OutputField], kb: KnowledgeBase
) -> tuple[int, int]:
    """(correct, wrong) demos; a demo about no known row, or with no answer given, counts as
    neither."""
    correct = wrong = 0
    for demo in demos:
        row = kb.lookup(demo.inputs.values())
        if row is None:
            continue
        verdicts = [
            answers_equal(demo.outputs[out], row.answers[ans])
            for out, ans in answer_targets(fields, row).items()
            if out in demo.outputs
        ]
        if False in verdicts:
            wrong += 1
        elif True in verdicts:
            correct += 1
    return correct, wrong


def reasoning_text(key: str, context: str, answer: Any | None) -> str:
    """A short step-by-step-looking sentence naming the numbers of the question."""
    numbers = re.findall(r"\d+(?:\.\d+)?", context)[:6]
    parts = [_REASONING_OPENERS[stable_int(key, 0, len(_REASONING_OPENERS) - 1, "opener")]]
    if len(numbers) > 1:
        parts.append(f"The numbers involved are {', '.join(numbers[:-1])} and {numbers[-1]}.")
    elif numbers:
        parts.append(f"The number involved is {numbers[0]}.")
    else:
        parts.append(sentence(key, context))
    parts.append(f"Combining them gives {answer}." if answer is not None else "That settles it.")
    return " ".join(parts)


def propose_instruction(key: str, kb: KnowledgeBase, messages: Sequence[Mapping[str, str]]) -> str:
    """An instruction-like text; each hint of the task the prompt mentions is included with
    probability HINT_PROPOSAL_RATE, so better instructions are found by searching, not given."""
    everything = "\n".join(m["content"] for m in messages)
    tasks = kb.tasks_mentioned(everything) or (kb.tasks if len(kb.tasks) == 1 else [])
    ins = ", ".join(f"`{n}`" for n in (tasks[0].inputs if tasks else ())) or "inputs"
    outs = ", ".join(f"`{n}`" for n in (tasks[0].outputs if tasks else ())) or "answer"
    parts = [_LEADS[stable_int(key, 0, len(_LEADS) - 1, "lead")].format(ins=ins, outs=outs)]
    hints = dict.fromkeys(h for task in tasks for h in task.hints)
    for hint in hints:
        if stable_unit(key, "hint", hint) < HINT_PROPOSAL_RATE:
            frame = _HINT_FRAMES[stable_int(key, 0, len(_HINT_FRAMES) - 1, "frame", hint)]
            parts.append(frame.format(hint))
    if stable_unit(key, "filler") < 0.5:
        parts.append(_FILLERS[stable_int(key, 0, len(_FILLERS) - 1, "filler-pick")])
    return " ".join(parts)


def _structured(
    prompt: ParsedPrompt,
    key: str,
    kb: KnowledgeBase,
    factors: SkillFactors,
    messages: Sequence[Mapping[str, str]],
) -> tuple[str, str, float | None]:
    row = kb.lookup(prompt.inputs.values()) if prompt.inputs else None
    targets = answer_targets(prompt.output_fields, row) if row else {}
    context = " ".join(str(v) for v in prompt.inputs.values()) or prompt.last_user
    values: dict[str, Any] = {}
    outcome, p, shown_answer = "unknown", None, None
    if row is not None and targets:
        names = [f.name for f in prompt.output_fields]
        first_reasoning = next((i for i, n in enumerate(names) if is_reasoning_field(n)), None)
        first_answer = min(names.index(n) for n in targets)
        correct_demos, wrong_demos = demo_verdicts(prompt.demos, prompt.output_fields, kb)
        p = correct_probability(
            SkillFactors(
                model=factors.model,
                difficulty=row.difficulty,
                reasoning_first=first_reasoning is not None and first_reasoning < first_answer,
                correct_demos=correct_demos,
                wrong_demos=wrong_demos,
                hints_matched=count_hints(prompt.instructions, row.task.hints),
                temperature=factors.temperature,
            )
        )
        correct = stable_unit(key, "correct") < p
        outcome = "correct" if correct else "wrong"
        labels = {f.name: f.type_label for f in prompt.output_fields}
        for out, ans in targets.items():
            truth = row.answers[ans]
            alternatives = kb.answers_of(row.task, ans)
            chosen = truth if correct else wrong_answer(truth, f"{key}/{out}", alternatives)
            values[out] = coerce(chosen, labels[out])
        shown_answer = values[next(iter(targets))]
    for field in prompt.output_fields:
        if field.name in values:
            continue
        if is_instruction_field(field.name) and field.type_label.startswith("dict"):
            values[field.name] = {
                name: propose_instruction(f"{key}/{name}", kb, messages)
                for name in _listed_names(prompt.inputs)
            }
        elif is_instruction_field(field.name):
            values[field.name] = propose_instruction(key, kb, messages)
        elif is_reasoning_field(field.name):
            values[field.name] = reasoning_text(key, context, shown_answer)
        else:
            values[field.name] = plausible(field, key, context)
    order = [f.name for f in prompt.output_fields]
    return render(values, order, prompt.json_mode), outcome, p


def _listed_names(inputs: Mapping[str, Any]) -> list[str]:
    """Keys for a dict of instructions (advice per module): the names listed in an input
    field whose name ends in ``names`` (a JSON list), else one key, ``default``."""
    for name, value in inputs.items():
        if not name.endswith("names"):
            continue
        try:
            listed = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            continue
        if isinstance(listed, list) and listed and all(isinstance(n, str) for n in listed):
            return list(dict.fromkeys(listed))
    return ["default"]


def _plain(
    prompt: ParsedPrompt,
    key: str,
    kb: KnowledgeBase,
    factors: SkillFactors,
    messages: Sequence[Mapping[str, str]],
) -> tuple[str, str, float | None]:
    """No output fields: a sentence, or ``{"answer": ...}``/``{"response": ...}`` when JSON
    is required."""
    row = kb.lookup([prompt.last_user]) if prompt.last_user.strip() else None
    if row is not None:
        hints = count_hints(prompt.instructions, row.task.hints)
        p = correct_probability(
            SkillFactors(
                factors.model, row.difficulty, hints_matched=hints, temperature=factors.temperature
            )
        )
        correct = stable_unit(key, "correct") < p
        shown = {
            name: truth
            if correct
            else wrong_answer(truth, f"{key}/{name}", kb.answers_of(row.task, name))
            for name, truth in row.answers.items()
        }
        outcome = "correct" if correct else "wrong"
        if prompt.json_mode:
            return json.dumps(shown), outcome, p
        return f"The answer is {'; '.join(map(str, shown.values()))}.", outcome, p
    if prompt.json_mode:
        return json.dumps({"response": sentence(key, prompt.last_user)}), "plain", None
    if "instruction" in prompt.last_user.lower():
        return f"```\n{propose_instruction(key, kb, messages)}\n```", "plain", None
    return sentence(key, prompt.last_user), "plain", None


def respond(request: Mapping[str, Any], model: str, kb: KnowledgeBase) -> Reply:
    """All choices for one ``/v1/chat/completions`` body (``model`` already validated)."""
    messages = text_messages(request.get("messages") or [])
    temperature = float(request.get("temperature") or 0.0)
    choices = max(1, int(request.get("n") or 1))
    response_format = request.get("response_format")
    prompt = parse_prompt(
        messages, response_format if isinstance(response_format, Mapping) else None
    )
    factors = SkillFactors(model=model, temperature=temperature)
    answer = _structured if prompt.structured else _plain
    results = [
        answer(
            prompt, sampling_key(model, messages, temperature, request, i), kb, factors, messages
        )
        for i in range(choices)
    ]
    return Reply(tuple(r[0] for r in results), results[0][1], results[0][2])
