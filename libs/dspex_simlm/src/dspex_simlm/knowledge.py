"""The facts the simulated LM knows: JSONL rows of input and answer fields, grouped into tasks
with optional metadata (which fields are inputs/answers, instruction hints)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_KNOWLEDGE = Path(__file__).resolve().parent / "data" / "math_qa.jsonl"
# Row keys that describe the row rather than hold a task field.
RESERVED_KEYS = frozenset({"difficulty", "id"})
# Shorter values are too common to identify a task inside a long prompt.
MIN_MENTION_CHARS = 12


class KnowledgeError(ValueError):
    """A knowledge file cannot be read."""


def normalize(value: Any) -> str:
    """Whitespace-collapsed, case-folded text used to match prompt values to rows."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return " ".join(text.split()).casefold()


@dataclass(frozen=True, slots=True)
class Task:
    name: str
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    hints: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Row:
    task: Task
    inputs: Mapping[str, Any]
    answers: Mapping[str, Any]
    difficulty: float
    position: int


def _task_from_meta(meta: Mapping[str, Any], default_name: str) -> Task:
    return Task(
        name=str(meta.get("name", default_name)),
        inputs=tuple(str(x) for x in meta.get("inputs", ())),
        outputs=tuple(str(x) for x in meta.get("outputs", ())),
        hints=tuple(str(x) for x in meta.get("hints", ())),
    )


def _split_row(task: Task, raw: Mapping[str, Any], position: int) -> Row:
    keys = [k for k in raw if k not in RESERVED_KEYS and not k.startswith("_")]
    outputs = [k for k in task.outputs if k in raw]
    if not outputs:
        outputs = ["answer"] if "answer" in raw else keys[-1:]
    inputs = [k for k in task.inputs if k in raw] or [k for k in keys if k not in outputs]
    difficulty = min(1.0, max(0.0, float(raw.get("difficulty", 0.0))))
    return Row(
        task=task,
        inputs={k: raw[k] for k in inputs},
        answers={k: raw[k] for k in outputs},
        difficulty=difficulty,
        position=position,
    )


def _read_jsonl(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    header: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise KnowledgeError(f"{path}:{number}: {exc}") from exc
        if not isinstance(obj, dict):
            raise KnowledgeError(f"{path}:{number}: expected a JSON object")
        if not rows and header is None and "_task" in obj:
            header = dict(obj["_task"])
            continue
        rows.append(obj)
    return header, rows


def _sidecar(path: Path) -> dict[str, Any] | None:
    for candidate in (path.with_name(path.stem + ".task.json"), path.with_name("task.json")):
        if candidate.is_file():
            data = json.loads(candidate.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise KnowledgeError(f"{candidate}: expected a JSON object")
            return data
    return None


def _expand(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(path.glob("*.jsonl")))
        elif path.is_file():
            files.append(path)
        else:
            raise KnowledgeError(f"knowledge file not found: {path}")
    return files


class KnowledgeBase:
    """Rows indexed by normalised input value; tasks keep their metadata (hints)."""

    def __init__(self, rows: Sequence[Row]) -> None:
        self.rows = list(rows)
        self.tasks: list[Task] = list(dict.fromkeys(row.task for row in self.rows))
        self._by_value: dict[str, list[int]] = {}
        self._answers_by_task: dict[tuple[str, str], list[Any]] = {}
        for index, row in enumerate(self.rows):
            for value in row.inputs.values():
                self._by_value.setdefault(normalize(value), []).append(index)
            for name, answer in row.answers.items():
                self._answers_by_task.setdefault((row.task.name, name), []).append(answer)
        self._mentions: dict[str, set[str]] = {}
        for row in self.rows:
            mentions = self._mentions.setdefault(row.task.name, set())
            mentions.update(
                text
                for text in map(normalize, row.inputs.values())
                if len(text) >= MIN_MENTION_CHARS
            )

    @classmethod
    def load(cls, paths: Iterable[str | Path] = ()) -> KnowledgeBase:
        """Read JSONL files (or directories of them); no paths means the bundled default."""
        files = _expand(paths) or [DEFAULT_KNOWLEDGE]
        tasks: dict[str, Task] = {}
        counts: dict[str, int] = {}
        rows: list[Row] = []
        for path in files:
            header, raws = _read_jsonl(path)
            meta = header if header is not None else (_sidecar(path) or {})
            task = _task_from_meta(meta, default_name=path.stem)
            task = tasks.setdefault(task.name, task)
            start = counts.get(task.name, 0)
            rows.extend(_split_row(task, raw, start + i) for i, raw in enumerate(raws))
            counts[task.name] = start + len(raws)
        return cls(rows)

    def lookup(self, values: Iterable[Any]) -> Row | None:
        """The row most of ``values`` belong to (ties: first loaded), or ``None``."""
        hits: dict[int, int] = {}
        for value in values:
            for index in self._by_value.get(normalize(value), ()):
                hits[index] = hits.get(index, 0) + 1
        if not hits:
            return None
        best = max(hits.values())
        return self.rows[min(i for i, n in hits.items() if n == best)]

    def answers_of(self, task: Task, name: str) -> list[Any]:
        """Every known answer to field ``name`` in ``task`` (source of plausible wrong ones)."""
        return self._answers_by_task.get((task.name, name), [])

    def tasks_mentioned(self, text: str) -> list[Task]:
        """Tasks one of whose input values appears somewhere in ``text``."""
        haystack = normalize(text)
        return [
            task
            for task in self.tasks
            if any(value in haystack for value in self._mentions.get(task.name, ()))
        ]
