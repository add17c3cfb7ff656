"""The committed JSON Schemas and AsyncAPI document are exactly what the generator writes,
and the generator notices drift, stale files and breaking changes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from dspex_contracts import EVENTS

pytestmark = pytest.mark.unit

CONTRACTS = Path(__file__).resolve().parents[1]


def test_committed_artefacts_are_up_to_date(generator: ModuleType) -> None:
    assert generator.differences(CONTRACTS) == [], (
        "generated files are out of date: run `python contracts/tools/generate.py`"
    )
    assert generator.main(["--check"]) == 0


@pytest.fixture
def copy_of_contracts(tmp_path: Path) -> Path:
    shutil.copytree(CONTRACTS / "schemas", tmp_path / "schemas")
    shutil.copy(CONTRACTS / "asyncapi.yaml", tmp_path / "asyncapi.yaml")
    return tmp_path


def test_check_lists_every_file_that_differs(
    generator: ModuleType, copy_of_contracts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_of_contracts
    (root / "schemas" / "dspex.run.pause.v1.json").write_text("{}\n")
    (root / "schemas" / "dspex.run.resume.v1.json").unlink()
    (root / "schemas" / "dspex.gone.v1.json").write_text("{}\n")
    (root / "asyncapi.yaml").write_text("asyncapi: 3.0.0\n")
    assert generator.main(["--check", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    for name in (
        "schemas/dspex.run.pause.v1.json",
        "schemas/dspex.run.resume.v1.json",
        "schemas/dspex.gone.v1.json (not generated)",
        "asyncapi.yaml",
    ):
        assert f"out of date: {name}" in err
    assert "dspex.exec.requested" not in err


def test_writing_repairs_drift_but_refuses_a_breaking_baseline(
    generator: ModuleType, copy_of_contracts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_of_contracts
    (root / "asyncapi.yaml").unlink()
    assert generator.main(["--root", str(root)]) == 0
    assert generator.differences(root) == []

    # A committed schema with a property the model lacks: the model would remove it.
    path = root / "schemas" / "dspex.run.cancel.v1.json"
    schema = json.loads(path.read_text())
    schema["$defs"]["CancelRunPayload"]["properties"]["operator"] = {"type": "string"}
    path.write_text(json.dumps(schema))
    assert generator.main(["--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "dspex.run.cancel.v1: $.payload.operator: property removed" in err
    assert json.loads(path.read_text()) == schema  # left as it was
    assert generator.main(["--root", str(root), "--allow-breaking"]) == 0
    assert generator.differences(root) == []


def test_schemas_are_stable_sorted_json_with_a_trailing_newline() -> None:
    for event in EVENTS:
        text = (CONTRACTS / "schemas" / f"{event.SUBJECT}.json").read_text(encoding="utf-8")
        assert text.endswith("}\n")
        canonical = json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False)
        assert text == canonical + "\n"
        assert json.loads(text)["title"] == event.TYPE


def test_asyncapi_describes_every_subject_with_its_model() -> None:
    doc = yaml.safe_load((CONTRACTS / "asyncapi.yaml").read_text(encoding="utf-8"))
    assert doc["asyncapi"].startswith("3.")
    assert doc["info"] == {**doc["info"], "title": "DSPEx events", "version": "1.0.0"}
    channels = {c["address"]: c for c in doc["channels"].values()}
    assert set(channels) == {event.SUBJECT for event in EVENTS}
    schemas = doc["components"]["schemas"]
    for event in EVENTS:
        assert channels[event.SUBJECT]["description"]
        payload = schemas[event.TYPE]
        assert payload["properties"]["type"]["const"] == event.TYPE
        assert set(payload["properties"]) == set(event.model_fields)


def test_faststream_reads_the_committed_document_back() -> None:
    # What `faststream docs serve contracts/asyncapi.yaml` parses before serving it.
    from faststream.specification.asyncapi.v3_0_0.schema import ApplicationSchema

    doc = yaml.safe_load((CONTRACTS / "asyncapi.yaml").read_text(encoding="utf-8"))
    schema = ApplicationSchema.model_validate(doc)
    assert schema.info.title == "DSPEx events"
    assert len(schema.channels) == len(EVENTS)
