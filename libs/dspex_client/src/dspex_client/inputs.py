"""What users hand the client: ProgramSpec files (JSON or YAML, minimal form accepted),
datasets (JSONL or a JSON list), ``key=value`` pairs whose values are JSON when they parse,
and the seeded split of a trainset into train and validation halves."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from dspex_kernel import DSPExError, ProgramSpec, load_examples

from .errors import InvalidInput

__all__ = [
    "load_dataset_file",
    "load_json_file",
    "load_spec_file",
    "parse_pairs",
    "parse_value",
    "split_trainset",
]


def load_spec_file(path: str | Path) -> ProgramSpec:
    """A ProgramSpec from a ``.yaml``/``.yml``/``.json`` file; InvalidInput says what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    try:
        if path.suffix in (".yaml", ".yml"):
            return ProgramSpec.from_yaml(path.read_text(encoding="utf-8"))
        return ProgramSpec.from_json(path.read_text(encoding="utf-8"))
    except DSPExError as e:
        raise InvalidInput(f"{path}: {e.message}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{path}: cannot read: {e}") from e


def load_dataset_file(path: str | Path) -> list[dict[str, Any]]:
    """Examples from a JSONL file (one object a line) or a ``.json`` list."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    try:
        return load_examples(path)
    except DSPExError as e:
        raise InvalidInput(f"{path}: {e.message}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{path}: cannot read: {e}") from e


def load_json_file(path: str | Path) -> Any:
    """The JSON (or YAML) document in ``path``."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".yaml", ".yml"):
            return yaml.safe_load(text)
        return json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise InvalidInput(
            f"{path}: not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {e}"
        ) from e
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{path}: cannot read: {e}") from e


def parse_value(text: str) -> Any:
    """``text`` as JSON when it parses (``3``, ``true``, ``[1, 2]``, ``"x"``), else the
    string itself, so that ``--input question=How many?`` needs no quoting."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_pairs(pairs: Iterable[str], *, option: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}``; ``option`` names the flag in errors."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInput(f"{option} {pair!r}: expected KEY=VALUE")
        out[key] = parse_value(value)
    return out


def split_trainset(
    examples: Sequence[dict[str, Any]], seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Shuffle with ``seed`` and cut in two halves (train, validation): what ``optimize``
    does when no valset is given. The same seed gives the same split."""
    if len(examples) < 2:
        raise InvalidInput("a trainset needs at least 2 examples to be split into train and val")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    half = len(order) // 2
    train = [examples[i] for i in order[:half]]
    val = [examples[i] for i in order[half:]]
    return train, val
