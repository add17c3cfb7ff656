"""Where the embedded stack lives and how other commands find it: the data folder
(``$DSPEX_DATA_DIR``, else ``~/.dspex``), the ``stack.json`` that ``dspex up`` writes there,
and the NATS URL a command should use."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_NATS_URL",
    "STACK_FILE",
    "default_data_dir",
    "read_stack_file",
    "resolve_nats_url",
    "write_stack_file",
]

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
STACK_FILE = "stack.json"


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$DSPEX_DATA_DIR``, else ``~/.dspex``: one place per user, so that any shell finds
    the stack that ``dspex up`` started."""
    env = os.environ if environ is None else environ
    configured = env.get("DSPEX_DATA_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".dspex"


def write_stack_file(data_dir: Path, info: Mapping[str, Any]) -> Path:
    """Write ``stack.json`` atomically (a reader never sees half a file)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / STACK_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(info), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def read_stack_file(data_dir: Path) -> dict[str, Any] | None:
    """The running stack's ``stack.json``, or None when there is none or its supervisor
    has died (a stale file left by a killed ``dspex up``)."""
    path = data_dir / STACK_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not _alive(info.get("pid")):
        return None
    return info


def remove_stack_file(data_dir: Path, pid: int) -> None:
    """Remove ``stack.json`` if it is still the one supervisor ``pid`` wrote."""
    path = data_dir / STACK_FILE
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == pid:
            path.unlink()


def resolve_nats_url(
    explicit: str | None = None,
    *,
    data_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The NATS URL to use: ``explicit``, else ``$DSPEX_NATS_URL``, else the embedded
    stack's from ``stack.json``, else ``nats://127.0.0.1:4222``."""
    if explicit:
        return explicit
    env = os.environ if environ is None else environ
    if env.get("DSPEX_NATS_URL"):
        return env["DSPEX_NATS_URL"]
    info = read_stack_file(data_dir or default_data_dir(env))
    if info and isinstance(info.get("nats_url"), str):
        return str(info["nats_url"])
    return DEFAULT_NATS_URL
