"""Knowledge files: the bundled copy agrees with the examples and their generator, task
metadata comes from headers or sidecars, and lookups ignore case and spacing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dspex_simlm.knowledge import DEFAULT_KNOWLEDGE, KnowledgeBase, KnowledgeError

pytestmark = pytest.mark.unit


def test_bundled_knowledge_is_the_example_rows(
    splits: dict[str, list[dict[str, Any]]], examples_dir: Path
) -> None:
    bundled = [json.loads(line) for line in DEFAULT_KNOWLEDGE.read_text().splitlines()]
    assert bundled == splits["train"] + splits["dev"] + splits["test"]
    sidecar = DEFAULT_KNOWLEDGE.with_name("math_qa.task.json").read_text()
    assert sidecar == (examples_dir / "task.json").read_text()


def test_examples_match_their_generator(examples_dir: Path) -> None:
    check = [sys.executable, str(examples_dir / "generate.py"), "--check"]
    result = subprocess.run(check, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_splits_are_disjoint_and_well_formed(
    splits: dict[str, list[dict[str, Any]]],
) -> None:
    assert [len(rows) for rows in splits.values()] == [300, 100, 200]
    questions = [row["question"] for rows in splits.values() for row in rows]
    assert len(set(questions)) == 600
    for row in (row for rows in splits.values() for row in rows):
        assert isinstance(row["answer"], int)
        assert row["answer"] > 0
        assert row["difficulty"] in {0.2, 0.5, 0.8}


def test_default_knowledge_has_the_task_hints() -> None:
    kb = KnowledgeBase.load()
    assert len(kb.rows) == 600
    assert [t.name for t in kb.tasks] == ["math_qa"]
    assert "step by step" in kb.tasks[0].hints
    assert kb.rows[0].inputs.keys() == {"question"}
    assert kb.rows[0].answers.keys() == {"answer"}


def test_lookup_normalises_whitespace_and_case() -> None:
    kb = KnowledgeBase.load()
    row = kb.rows[10]
    shouted = "  " + str(row.inputs["question"]).upper().replace(" ", "   ") + "\n"
    assert kb.lookup([shouted]) == row
    assert kb.lookup(["no such question"]) is None


def test_header_line_and_sidecars_give_task_metadata(tmp_path: Path) -> None:
    header = {"_task": {"name": "capitals", "outputs": ["city"], "hints": ["think"]}}
    rows = [{"country": "France", "city": "Paris", "difficulty": 0.1, "id": 1}]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in [header, *rows]) + "\n")
    other = tmp_path / "sub"
    other.mkdir()
    (other / "b.jsonl").write_text(json.dumps({"q": "2+2", "answer": 4}) + "\n")
    (other / "b.task.json").write_text(json.dumps({"name": "sums", "hints": ["carefully"]}))
    kb = KnowledgeBase.load([tmp_path / "a.jsonl", other])
    assert {t.name: t.hints for t in kb.tasks} == {"capitals": ("think",), "sums": ("carefully",)}
    capital = kb.lookup(["france"])
    assert capital is not None
    assert capital.answers == {"city": "Paris"}
    assert capital.inputs == {"country": "France"}
    assert capital.difficulty == 0.1
    total = kb.lookup(["2+2"])
    assert total is not None
    assert total.answers == {"answer": 4}


def test_bad_knowledge_files_are_reported(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"q": 1}\nnot json\n')
    with pytest.raises(KnowledgeError, match=r"broken\.jsonl:2"):
        KnowledgeBase.load([broken])
    with pytest.raises(KnowledgeError, match="not found"):
        KnowledgeBase.load([tmp_path / "missing.jsonl"])


def test_the_server_imports_neither_litellm_nor_the_kernel() -> None:
    code = (
        "import sys, dspex_simlm.server, dspex_simlm.__main__;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('litellm', 'dspex_kernel', 'dspy')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
