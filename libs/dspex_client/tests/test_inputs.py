"""What users hand the CLI: key=value pairs, spec and dataset files, the seeded split."""

from __future__ import annotations

from pathlib import Path

import pytest
from client_helpers import EXAMPLE, write_jsonl

from dspex_client.errors import InvalidInput
from dspex_client.inputs import (
    load_dataset_file,
    load_json_file,
    load_spec_file,
    parse_pairs,
    parse_value,
    split_trainset,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("2.5", 2.5),
        ("true", True),
        ("[1, 2]", [1, 2]),
        ('"quoted"', "quoted"),
        ("How many apples?", "How many apples?"),
        ("", ""),
    ],
)
def test_values_are_json_when_they_parse(text: str, value: object) -> None:
    assert parse_value(text) == value


def test_pairs_split_at_the_first_equals_sign() -> None:
    assert parse_pairs(["question=a=b", "k=7"], option="--input") == {"question": "a=b", "k": 7}


@pytest.mark.parametrize("bad", ["novalue", "=3"])
def test_a_pair_without_key_or_equals_is_invalid(bad: str) -> None:
    with pytest.raises(InvalidInput, match="--input"):
        parse_pairs([bad], option="--input")


def test_split_is_seeded_disjoint_and_complete() -> None:
    rows = [{"i": i} for i in range(11)]
    train, val = split_trainset(rows, seed=3)
    assert (train, val) == split_trainset(rows, seed=3)
    assert split_trainset(rows, seed=4) != (train, val)
    assert len(train) == 5
    assert len(val) == 6
    assert sorted(r["i"] for r in train + val) == list(range(11))


def test_split_needs_two_examples() -> None:
    with pytest.raises(InvalidInput):
        split_trainset([{"i": 0}], seed=0)


def test_spec_files_load_in_yaml_and_minimal_json(tmp_path: Path) -> None:
    assert load_spec_file(EXAMPLE / "program.yaml").name == "math_qa"
    minimal = tmp_path / "qa.json"
    minimal.write_text(
        '{"name": "qa", "stages": [{"name": "a", "module": "predict", '
        '"signature": "question -> answer"}]}'
    )
    assert load_spec_file(minimal).input_fields == ("question",)


def test_bad_spec_files_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: qa\nstages: []\n")
    with pytest.raises(InvalidInput, match=r"bad\.yaml.*stages"):
        load_spec_file(bad)
    with pytest.raises(InvalidInput, match="no such file"):
        load_spec_file(tmp_path / "missing.yaml")


def test_datasets_and_documents(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": 1}])
    assert load_dataset_file(path) == [{"question": "q", "answer": 1}]
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(InvalidInput, match="empty"):
        load_dataset_file(tmp_path / "empty.jsonl")
    (tmp_path / "doc.json").write_text("{oops")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        load_json_file(tmp_path / "doc.json")
