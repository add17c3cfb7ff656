"""Metrics: ``metric(example, outputs) -> float in [0, 1]``. Built-ins compare each output
field that the example also labels; user metrics are resolved by import path."""

from __future__ import annotations

import importlib
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from .errors import MetricError

Metric = Callable[[Mapping[str, Any], Mapping[str, Any]], float | bool]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?")


def normalize_text(text: Any) -> str:
    """Lowercase, drop punctuation and articles, fold white space (SQuAD's rule)."""
    s = str(text).lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def _labelled(example: Mapping[str, Any], outputs: Mapping[str, Any]) -> list[str]:
    fields = [k for k in outputs if k in example and k != "reasoning"]
    if not fields:
        raise MetricError(
            f"no output field {sorted(outputs)} is labelled in the example {sorted(example)}"
        )
    return fields


def _per_field(compare: Callable[[Any, Any], float]) -> Metric:
    def metric(example: Mapping[str, Any], outputs: Mapping[str, Any]) -> float:
        fields = _labelled(example, outputs)
        return sum(compare(example[f], outputs[f]) for f in fields) / len(fields)

    metric.__name__ = compare.__name__
    return metric


def _exact(expected: Any, predicted: Any) -> float:
    if isinstance(expected, list):
        return float(any(_exact(e, predicted) for e in expected))
    return float(normalize_text(expected) == normalize_text(predicted))


def _f1(expected: Any, predicted: Any) -> float:
    if isinstance(expected, list):
        return max((_f1(e, predicted) for e in expected), default=0.0)
    gold, pred = normalize_text(expected).split(), normalize_text(predicted).split()
    common = sum((Counter(gold) & Counter(pred)).values())
    if not gold or not pred:
        return float(gold == pred)
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def _contains(expected: Any, predicted: Any) -> float:
    if isinstance(expected, list):
        return float(any(_contains(e, predicted) for e in expected))
    return float(normalize_text(expected) in normalize_text(predicted))


def parse_number(value: Any) -> float | None:
    """The number a value states: itself, or the last number written in its text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    found = _NUMBER.findall(str(value))
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def _numeric(expected: Any, predicted: Any) -> float:
    want, got = parse_number(expected), parse_number(predicted)
    if want is None or got is None:
        return 0.0
    return float(math.isclose(want, got, rel_tol=1e-6, abs_tol=1e-9))


BUILTIN_METRICS: dict[str, Metric] = {
    "exact_match": _per_field(_exact),
    "f1": _per_field(_f1),
    "contains": _per_field(_contains),
    "numeric": _per_field(_numeric),
}


def get_metric(name_or_path: str, *, allow_import: bool = True) -> Metric:
    """A built-in metric by name, or ``package.module:function`` when imports are
    allowed (services pass an allow-list instead)."""
    if name_or_path in BUILTIN_METRICS:
        return BUILTIN_METRICS[name_or_path]
    if ":" not in name_or_path or not allow_import:
        raise MetricError(
            f"unknown metric {name_or_path!r}; built-in metrics: {sorted(BUILTIN_METRICS)}"
            + (", or 'package.module:function'" if allow_import else "")
        )
    module_name, _, attr = name_or_path.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise MetricError(f"cannot load metric {name_or_path!r}: {e}") from e
    if not callable(fn):
        raise MetricError(f"metric {name_or_path!r} is not callable")
    metric: Metric = fn
    return metric
