"""Writes the contracts' generated artefacts: one JSON Schema per event under
``contracts/schemas/<subject>.json`` and the AsyncAPI 3.0 document FastStream generates,
``contracts/asyncapi.yaml``. ``--check`` writes nothing and exits 1 listing the files that
differ. A committed schema is the baseline of its subject: it is never overwritten with a
breaking change (see ``dspex_contracts.compat``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from faststream.nats import JStream, NatsBroker
from faststream.specification import AsyncAPI

from dspex_contracts import EVENTS, Envelope, breaking_changes
from dspex_contracts.subjects import STREAMS, stream_for

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = "schemas"
ASYNCAPI = "asyncapi.yaml"

DESCRIPTION = (
    "The events of DSPEx over NATS JetStream. Every message is a JSON envelope (id, type, "
    "version, occurred_at, correlation_id, causation_id, payload); the id is also the "
    "Nats-Msg-Id that JetStream de-duplicates on, and W3C trace context travels in the NATS "
    "headers. Subjects carry the major version: additive changes keep it, a breaking change "
    "gets a new subject served beside the old one."
)


def event_schema(event: type[Envelope[Any]]) -> dict[str, Any]:
    """The JSON Schema of what a consumer of ``event`` accepts."""
    return event.model_json_schema(mode="validation")


def render_json(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def asyncapi_yaml() -> str:
    """The AsyncAPI document of a documentation-only broker: one publisher per subject."""
    # Never connected: it exists so FastStream describes every subject and its model.
    broker = NatsBroker(
        specification_url="nats://localhost:4222",
        description=f"NATS with JetStream; streams: {', '.join(STREAMS)}.",
    )
    for event in EVENTS:
        broker.publisher(
            event.SUBJECT,
            stream=JStream(stream_for(event.SUBJECT), declare=False),
            title=event.TYPE,
            description=" ".join((event.__doc__ or event.TYPE).split()),
            schema=event,
        )
    spec = AsyncAPI(
        broker,
        title="DSPEx events",
        version="1.0.0",
        description=DESCRIPTION,
        schema_version="3.0.0",
    ).to_specification()
    # FastStream keeps publishers in a WeakSet, so their order changes from run to run:
    # sort the named sections; dump as FastStream's own to_yaml() does.
    doc: dict[str, Any] = spec.to_jsonable()
    for section in (doc, doc.get("components", {})):
        for key in ("channels", "operations", "messages", "schemas"):
            if isinstance(section.get(key), dict):
                section[key] = dict(sorted(section[key].items()))
    text: str = yaml.dump(doc, sort_keys=False, allow_unicode=True)
    return text


def render(root: Path = ROOT) -> dict[Path, str]:
    """Every generated file and its content."""
    files = {
        root / SCHEMAS / f"{event.SUBJECT}.json": render_json(event_schema(event))
        for event in EVENTS
    }
    files[root / ASYNCAPI] = asyncapi_yaml()
    return files


def differences(root: Path = ROOT) -> list[str]:
    """Files (relative to ``root``) that are missing, differ, or should not exist."""
    files = render(root)
    found = [
        path.relative_to(root).as_posix()
        for path, text in files.items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]
    extra = sorted(set((root / SCHEMAS).glob("*.json")) - set(files))
    return found + [f"{path.relative_to(root).as_posix()} (not generated)" for path in extra]


def breaks(root: Path = ROOT) -> list[str]:
    """Breaking changes of the current models against the committed schemas."""
    out: list[str] = []
    current = {event.SUBJECT: event for event in EVENTS}
    for path in sorted((root / SCHEMAS).glob("*.json")):
        subject = path.name.removesuffix(".json")
        old = json.loads(path.read_text(encoding="utf-8"))
        if subject not in current:
            out.append(f"{subject}: event removed")
            continue
        new = event_schema(current[subject])
        out += [f"{subject}: {problem}" for problem in breaking_changes(old, new)]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 on drift")
    parser.add_argument(
        "--allow-breaking",
        action="store_true",
        help="overwrite committed schemas even with breaking changes (only before release)",
    )
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root: Path = args.root
    if args.check:
        stale = differences(root)
        for name in stale:
            print(f"out of date: {name}", file=sys.stderr)
        if stale:
            print("run: python contracts/tools/generate.py", file=sys.stderr)
        return 1 if stale else 0
    problems = breaks(root)
    if problems and not args.allow_breaking:
        for problem in problems:
            print(f"breaking: {problem}", file=sys.stderr)
        print(
            "v1 schemas only grow: make the change additive, or serve a new major version "
            "on a new subject",
            file=sys.stderr,
        )
        return 2
    (root / SCHEMAS).mkdir(parents=True, exist_ok=True)
    files = render(root)
    for path, text in files.items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(root).as_posix()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
