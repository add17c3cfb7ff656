"""evaluate() and metrics: concurrency, per-example results, failures scored not raised."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dspex_kernel import MetricError, ProgramSpec, Runtime, evaluate, get_metric, load_examples
from dspex_kernel.lm import LMRequest, LMResponse, Usage
from dspex_kernel.metrics import normalize_text, parse_number
from dspex_kernel.testing import chat_reply

pytestmark = pytest.mark.unit

SPEC = ProgramSpec.from_data(
    {"name": "t", "stages": [{"name": "s", "module": "predict", "signature": "q -> answer: int"}]}
)


class SlowEcho:
    """Answers the number in the question after a delay; counts concurrency."""

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0

    async def complete(self, request: LMRequest) -> LMResponse:
        self.active += 1
        self.peak = max(self.peak, self.active)
        await asyncio.sleep(0.01)
        self.active -= 1
        question = request.messages[-1]["content"].split("\n")[1]
        text = chat_reply(answer=question) if question != "bad" else "garbage"
        return LMResponse(text, request.model, Usage(calls=1))


async def test_scores_examples_with_bounded_concurrency() -> None:
    lm = SlowEcho()
    data = [{"q": str(i), "answer": i if i % 4 else -1} for i in range(40)]
    report = await evaluate(
        SPEC, data, "exact_match", runtime=Runtime(lm, model="m"), concurrency=8
    )
    assert report.n == 40
    assert report.score == pytest.approx(30 / 40)
    assert lm.peak == 8
    assert [r.index for r in report.results] == list(range(40))
    assert report.results[1].outputs == {"answer": 1}
    assert report.summary()["lm_calls"] == 40


async def test_failed_examples_score_zero_with_their_error() -> None:
    data = [{"q": "1", "answer": 1}, {"q": "bad", "answer": 2}]
    report = await evaluate(SPEC, data, "numeric", runtime=Runtime(SlowEcho(), model="m"))
    assert report.score == 0.5
    assert report.n_failed == 1
    failed = report.results[1]
    assert failed.error is not None
    assert failed.error["code"] == "unparseable_reply"


async def test_metric_must_return_a_unit_score() -> None:
    with pytest.raises(MetricError, match=r"\[0, 1\]"):
        await evaluate(
            SPEC,
            [{"q": "1", "answer": 1}],
            lambda e, o: 5.0,
            runtime=Runtime(SlowEcho(), model="m"),
        )


def test_builtin_metrics() -> None:
    em, f1, contains, numeric = (
        get_metric(n) for n in ("exact_match", "f1", "contains", "numeric")
    )
    assert em({"answer": "The Eiffel Tower!"}, {"answer": "eiffel tower"}) == 1.0
    assert em({"answer": ["Paris", "paris, france"]}, {"answer": "Paris, France"}) == 1.0
    assert f1({"answer": "new york city"}, {"answer": "york city"}) == pytest.approx(0.8)
    assert contains({"answer": "blue"}, {"answer": "It is blue."}) == 1.0
    assert numeric({"answer": 1200}, {"answer": "about 1,200"}) == 1.0
    assert numeric({"answer": 3}, {"answer": "three"}) == 0.0
    assert normalize_text("  A  Cat, the  dog ") == "cat dog"
    assert parse_number("x = -3.5e2") == -350.0


def test_metric_lookup_errors_and_import_paths() -> None:
    with pytest.raises(MetricError, match="unknown metric"):
        get_metric("accuracy")
    with pytest.raises(MetricError, match="unknown metric"):
        get_metric("os.path:join", allow_import=False)
    with pytest.raises(MetricError, match="cannot load"):
        get_metric("no_such_module_x:fn")
    assert get_metric("dspex_kernel.metrics:normalize_text") is not None
    with pytest.raises(MetricError, match="labelled"):
        get_metric("exact_match")({"question": "x"}, {"answer": "y"})


def test_load_examples(tmp_path: Path, example_dir: Path) -> None:
    rows = load_examples(example_dir / "dev.jsonl")
    assert len(rows) == 100
    assert {"question", "answer"} <= set(rows[0])
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{nope\n")
    with pytest.raises(Exception, match="not valid JSON"):
        load_examples(bad)
