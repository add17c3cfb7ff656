"""Architecture rules that a reader of the layout relies on: the kernel library stays pure,
litellm lives in one module, and nothing names a package registry or a machine path."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
KERNEL = REPO / "libs" / "dspex_kernel" / "src" / "dspex_kernel"
FORBIDDEN_IN_KERNEL = {
    "faststream",
    "nats",
    "sqlalchemy",
    "alembic",
    "dspy",
    "dspex_simlm",
    "asyncpg",
    "aiosqlite",
    # Metrics and traces are the services' business: LMClient offers an observer hook.
    "prometheus_client",
    "opentelemetry",
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def python_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.py") if ".venv" not in p.parts]


def test_kernel_library_is_pure() -> None:
    offenders = {
        str(p.relative_to(REPO)): sorted(imported_roots(p) & FORBIDDEN_IN_KERNEL)
        for p in python_files(KERNEL)
        if imported_roots(p) & FORBIDDEN_IN_KERNEL
    }
    assert offenders == {}


def test_litellm_is_imported_in_exactly_one_module() -> None:
    importers = [
        str(p.relative_to(REPO))
        for root in ("libs", "services", "contracts")
        if (REPO / root).exists()
        for p in python_files(REPO / root)
        if "litellm" in imported_roots(p) and "/tests/" not in str(p)
    ]
    assert importers == ["libs/dspex_kernel/src/dspex_kernel/_litellm.py"]


def test_kernel_reads_no_environment() -> None:
    readers = [
        str(p.relative_to(REPO))
        for p in python_files(KERNEL)
        if re.search(r"os\.environ(?!\.setdefault\(\"LITELLM)", p.read_text(encoding="utf-8"))
        or "getenv(" in p.read_text(encoding="utf-8")
    ]
    assert readers == []


def test_no_registry_urls_or_uv_lock() -> None:
    assert not (REPO / "uv.lock").exists()
    for lock in (REPO / "requirements").glob("*.txt"):
        assert not re.search(r"https?://", lock.read_text(encoding="utf-8")), lock.name
