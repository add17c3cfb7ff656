"""ProgramSpec: minimal form, JSON/YAML round trip, and clear validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from dspex_kernel.errors import ConfigurationError, ProgramError
from dspex_kernel.program import ProgramSpec

pytestmark = pytest.mark.unit

MINIMAL = {
    "name": "qa",
    "stages": [
        {"name": "retrieve", "module": "retrieve", "signature": "question -> passages: list[str]"},
        {
            "name": "answer",
            "module": "chain_of_thought",
            "signature": "question, passages: list[str] -> answer",
        },
    ],
}


def test_minimal_form_and_derived_fields() -> None:
    spec = ProgramSpec.from_data(MINIMAL)
    assert spec.version == 1
    assert spec.input_fields == ("question",)
    assert spec.output_fields == ("answer",)


def test_round_trips(example_dir: Path) -> None:
    spec = ProgramSpec.load(example_dir / "program.yaml")
    assert ProgramSpec.from_json(spec.to_json()) == spec
    assert ProgramSpec.from_yaml(spec.to_yaml()) == spec
    assert len(spec.variables) == 5


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"stages": []}, "at least 1"),
        (
            {"stages": [{"name": "a", "module": "teleport", "signature": "q -> a"}]},
            "unknown module kind 'teleport'",
        ),
        (
            {"stages": [{"name": "a", "module": "predict", "signature": "q a"}]},
            "stage 'a': signature",
        ),
        ({"configuration": {"stages": {"ghost": {"temperature": 0.1}}}}, "unknown stages"),
        ({"configuration": {"defaults": {"temperature": 9}}}, "less than or equal to 2"),
        (
            {
                "variables": {
                    "variables": [
                        {
                            "name": "t",
                            "kind": "float",
                            "low": 0,
                            "high": 1,
                            "path": "ghost.temperature",
                        }
                    ]
                }
            },
            "path 'ghost.temperature'",
        ),
        ({"surprise": 1}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_programs(change: dict[str, object], fragment: str) -> None:
    with pytest.raises(ProgramError) as info:
        ProgramSpec.from_data({**MINIMAL, **change})
    assert fragment in info.value.message


def test_bad_text() -> None:
    with pytest.raises(ProgramError, match="not valid JSON"):
        ProgramSpec.from_json("{")
    with pytest.raises(ProgramError, match="not valid YAML"):
        ProgramSpec.from_yaml("a: [")


def test_with_configuration_writes_overrides(example_dir: Path) -> None:
    spec = ProgramSpec.load(example_dir / "program.yaml")
    new = spec.with_configuration(
        {"module": "chain_of_thought", "temperature": 0.5, "solve.max_tokens": 300}, version=2
    )
    assert new.version == 2
    assert new.configuration.stages["solve"].module == "chain_of_thought"
    assert new.configuration.defaults.temperature == 0.5
    assert new.configuration.stages["solve"].max_tokens == 300
    with pytest.raises(ConfigurationError, match="outside"):
        spec.with_configuration({"temperature": 1.7})
