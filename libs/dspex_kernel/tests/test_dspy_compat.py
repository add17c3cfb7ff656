"""DSPy saved-program JSON: what DSPy saves loads into our configuration, and what we save
loads into the equivalent DSPy program."""

from __future__ import annotations

from pathlib import Path

import dspy
import pytest

from dspex_kernel import ProgramError, ProgramSpec
from dspex_kernel.dspy_compat import (
    load_dspy_file,
    load_dspy_state,
    save_dspy_file,
    to_dspy_state,
)

pytestmark = pytest.mark.unit

SPEC = ProgramSpec.from_data(
    {
        "name": "two_step",
        "stages": [
            {"name": "draft", "module": "predict", "signature": "question -> draft"},
            {
                "name": "answer",
                "module": "chain_of_thought",
                "signature": "question, draft -> answer",
            },
        ],
    }
)


class TwoStep(dspy.Module):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.draft = dspy.Predict("question -> draft")
        self.answer = dspy.ChainOfThought("question, draft -> answer")


def test_load_what_dspy_saved(tmp_path: Path) -> None:
    program = TwoStep()
    program.draft.demos = [dspy.Example(question="q1", draft="d1")]
    program.answer.predict.demos = [
        dspy.Example(question="q2", draft="d2", reasoning="r2", answer="a2", augmented=True)
    ]
    program.answer.predict.signature = program.answer.predict.signature.with_instructions(
        "Answer carefully."
    )
    path = tmp_path / "program.json"
    program.save(str(path))
    loaded = load_dspy_file(SPEC, path)
    stages = loaded.configuration.stages
    assert stages["draft"].demos == [{"question": "q1", "draft": "d1"}]
    assert stages["answer"].demos == [
        {"question": "q2", "draft": "d2", "reasoning": "r2", "answer": "a2"}
    ]
    assert stages["answer"].instructions == "Answer carefully."


def test_dspy_loads_what_we_saved(tmp_path: Path) -> None:
    spec = SPEC.with_configuration(
        {
            "answer.instructions": "Be exact.",
            "answer.demos": [{"question": "q", "draft": "d", "reasoning": "r", "answer": "a"}],
        }
    )
    path = tmp_path / "ours.json"
    save_dspy_file(spec, path)
    program = TwoStep()
    program.load(str(path))
    assert program.answer.predict.signature.instructions == "Be exact."
    assert program.answer.predict.demos[0]["answer"] == "a"
    assert program.draft.demos == []
    assert load_dspy_file(SPEC, path).configuration == spec.configuration


def test_unknown_predictors_are_rejected() -> None:
    state = to_dspy_state(SPEC)
    state["elsewhere.predict"] = state["draft"]
    with pytest.raises(ProgramError, match="match no stage"):
        load_dspy_state(SPEC, state)


def test_a_bare_predict_saved_by_dspy_loads_into_the_one_lm_stage(tmp_path: Path) -> None:
    spec = ProgramSpec.from_data(
        {
            "name": "one",
            "stages": [{"name": "solve", "module": "predict", "signature": "question -> answer"}],
        }
    )
    program = dspy.Predict(dspy.Signature("question -> answer", "Be brief."))
    program.demos = [dspy.Example(question="1 + 1?", answer="2")]
    path = tmp_path / "predict.json"
    program.save(str(path))
    loaded = load_dspy_file(spec, path)
    config = loaded.configuration.stages["solve"]
    assert config.instructions == "Be brief."
    assert config.demos == [{"question": "1 + 1?", "answer": "2"}]
    with pytest.raises(ProgramError, match="one unnamed predictor"):
        load_dspy_file(SPEC, path)
