"""The package's shape: it imports nothing but pydantic (and the standard library), and
every subject has exactly one event."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import dspex_contracts
from dspex_contracts import EVENTS, event_for_subject, subjects
from dspex_contracts.subjects import stream_for

pytestmark = pytest.mark.unit

PACKAGE = Path(dspex_contracts.__file__).resolve().parent
# pydantic and what pydantic itself imports.
ALLOWED = {"pydantic", "pydantic_core", "typing_extensions", "annotated_types", "typing_inspection"}


def test_the_source_imports_only_pydantic_and_the_standard_library() -> None:
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top in {"pydantic", "pydantic_core"}, (
                    f"{path.name} imports {name}"
                )


def test_importing_it_loads_nothing_but_pydantic() -> None:
    code = (
        "import json, sys; before = set(sys.modules); import dspex_contracts; "
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = set(json.loads(out))
    assert "pydantic" in loaded
    # sysconfig loads its platform data module, part of the standard library too.
    stdlib = set(sys.stdlib_module_names) | {m for m in loaded if m.startswith("_sysconfigdata")}
    foreign = loaded - stdlib - ALLOWED - {"dspex_contracts"}
    assert not foreign, f"importing dspex_contracts loaded {sorted(foreign)}"


def test_every_stored_subject_has_one_event() -> None:
    published = {
        value
        for name, value in vars(subjects).items()
        if name.isupper() and isinstance(value, str) and value.startswith("dspex.")
    }
    rpc = {subjects.EXEC_CALL}  # request/reply carries ExecuteRequested, not stored
    notices = {subjects.RUN_CHANGED_NOTICE}  # core NATS, a run id only, not stored
    assert {event.SUBJECT for event in EVENTS} == published - rpc - notices
    for notice in notices:
        with pytest.raises(KeyError):
            stream_for(notice)
    assert len({event.TYPE for event in EVENTS}) == len(EVENTS)
    for event in EVENTS:
        assert event_for_subject(event.SUBJECT) is event
        assert event.SUBJECT.endswith(f".v{event.VERSION}")
        stream_for(event.SUBJECT)  # stored by some stream


def test_an_unknown_subject_names_the_served_ones() -> None:
    with pytest.raises(KeyError, match=r"served.*dspex\.exec\.requested\.v1"):
        event_for_subject("dspex.exec.requested.v2")


def test_everything_public_is_exported() -> None:
    for name in dspex_contracts.__all__:
        assert hasattr(dspex_contracts, name), name
    for event in EVENTS:
        assert event.__name__ in dspex_contracts.__all__
        payload = event.model_fields["payload"].annotation
        assert isinstance(payload, type)
        assert payload.__name__ in dspex_contracts.__all__
