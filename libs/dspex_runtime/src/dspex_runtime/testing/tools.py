"""Test tools from outside Python, installed on demand: ``promtool`` (Debian's prometheus
package) to check /metrics, and the npm ``nats`` client for a Node.js publisher. Tests call
:func:`require_tool`, which skips when a tool is missing, and fails under ``CI=true``."""

from __future__ import annotations

import fcntl
import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

__all__ = [
    "NODE_NATS",
    "NODE_NATS_VERSION",
    "PROMTOOL",
    "cache_dir",
    "ensure_node_nats",
    "ensure_promtool",
    "missing_reason",
    "promtool_check_metrics",
    "require_tool",
]

PROMTOOL = "promtool"
NODE_NATS = "node-nats"

# The npm client and its whole dependency closure, pinned by version and by the integrity
# the registry publishes (`npm view <name>@<version> dist.integrity`). No lockfile is
# committed (npm lockfiles embed registry addresses); an install whose integrities differ
# from these is refused.
NODE_NATS_VERSION = "2.29.3"
NODE_NATS_INTEGRITY = {
    "nats": (
        "sha512-tOQCRCwC74DgBTk4pWZ9V45sk4d7peoE2njVprMRCBXrhJ5q5cYM7"
        "i6W+Uvw2qUrcfOSnuisrX7bEx3b3Wx4QA=="
    ),
    "nkeys.js": (
        "sha512-tB/a0shZL5UZWSwsoeyqfTszONTt4k2YS0tuQioMOD180+MbombYV"
        "gzDUYHlx+gejYK6rgf08n/2Df99WY0Sxg=="
    ),
    "tweetnacl": (
        "sha512-6rt+RN7aOi1nGMyC4Xa5DdYiukl2UWCbcJft7YhxReBGQD7OAM8Pb"
        "xw6YMo4r2diNEA8FEmu32YOn9rhaiE5yw=="
    ),
}

_POLICY_RC = Path("/usr/sbin/policy-rc.d")
_INSTALL_TIMEOUT_S = 900
_reasons: dict[str, str] = {}

T = TypeVar("T")


def missing_reason(what: str) -> str:
    """Why the last ``ensure_*`` call for ``what`` returned ``None``."""
    return _reasons.get(what, f"{what} is not available")


def require_tool(found: T | None, what: str) -> T:
    """``found`` if it is not ``None``; else skip the calling test, or fail it when the
    environment says ``CI=true`` (CI must run every check, not silently skip it)."""
    if found is not None:
        return found
    import pytest  # Only tests call this; the runtime does not depend on pytest.

    reason = missing_reason(what)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (required under CI=true)")
    pytest.skip(reason)


def cache_dir() -> Path:
    """Where downloaded tools live: ``$DSPEX_TOOLS_CACHE``, else ``.cache/`` at the root
    of the repository this file is in (git-ignored), else the user's cache folder."""
    override = os.environ.get("DSPEX_TOOLS_CACHE")
    if override:
        return Path(override)
    for parent in Path(__file__).resolve().parents:
        if (parent / ".git").exists():
            return parent / ".cache"
    return Path.home() / ".cache" / "dspex"


@functools.cache
def ensure_promtool() -> str | None:
    """The path of ``promtool``, installing Debian's ``prometheus`` package when missing and
    running as root (without starting its service). ``None`` with a printed reason if not."""
    try:
        return _find_or_install_promtool()
    except _Unavailable as e:
        _record(PROMTOOL, str(e))
        return None


@functools.cache
def ensure_node_nats() -> Path | None:
    """The ``node_modules`` folder holding the pinned npm ``nats`` client, installed into
    :func:`cache_dir` on first use and checked against the pinned integrities. ``None``
    with a printed reason if Node.js or npm is missing or the install fails."""
    try:
        return _install_node_nats()
    except _Unavailable as e:
        _record(NODE_NATS, str(e))
        return None


class _Unavailable(Exception):
    """Why a tool cannot be had here."""


def _find_or_install_promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise _Unavailable("promtool not found; install the Debian package prometheus")
    with _locked("apt"):
        if shutil.which("promtool") is None:
            _apt_install("prometheus")
    found = shutil.which("promtool")
    if found is None:
        raise _Unavailable("prometheus installed but promtool is not on PATH")
    return found


def _install_node_nats() -> Path:
    if shutil.which("node") is None:
        raise _Unavailable("node (Node.js) not found on PATH")
    prefix = cache_dir() / "node-nats" / NODE_NATS_VERSION
    modules = prefix / "node_modules"
    with _locked("node-nats"):
        if _installed_version(modules) != NODE_NATS_VERSION:
            npm = shutil.which("npm")
            if npm is None:
                raise _Unavailable("npm not found on PATH")
            prefix.mkdir(parents=True, exist_ok=True)
            command = [npm, "install", "--no-audit", "--no-fund", "--omit=dev"]
            _run([*command, "--prefix", str(prefix), f"nats@{NODE_NATS_VERSION}"])
        problem = _integrity_problem(modules)
        if problem:
            # Never run code that is not what was pinned; remove it so the next run retries.
            shutil.rmtree(prefix, ignore_errors=True)
            raise _Unavailable(problem)
    return modules


def promtool_check_metrics(
    promtool: str, exposition: str | bytes
) -> subprocess.CompletedProcess[str]:
    """``promtool check metrics`` of a Prometheus text exposition (what /metrics serves):
    exit code 0 when it parses and passes promtool's lint (``_total`` on counters, ...)."""
    data = exposition if isinstance(exposition, str) else exposition.decode()
    return subprocess.run(
        [promtool, "check", "metrics"], input=data, capture_output=True, text=True, timeout=60
    )


def _installed_version(modules: Path) -> str | None:
    try:
        manifest = json.loads((modules / "nats" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = manifest.get("version") if isinstance(manifest, dict) else None
    return version if isinstance(version, str) else None


def _integrity_problem(modules: Path) -> str | None:
    """What is wrong with the installed closure, read from npm's hidden lockfile."""
    try:
        lock = json.loads((modules / ".package-lock.json").read_text())
        packages = lock["packages"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"cannot read the installed npm packages' integrity: {e!r}"
    installed = {
        path.removeprefix("node_modules/"): entry.get("integrity")
        for path, entry in packages.items()
        if path.startswith("node_modules/") and isinstance(entry, dict)
    }
    if installed != NODE_NATS_INTEGRITY:
        return (
            f"npm nats@{NODE_NATS_VERSION}: installed packages {installed} are not the pinned ones"
        )
    return None


def _apt_install(package: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait_for_lock = ["-o", "DPkg::Lock::Timeout=300"]
    # Installing a daemon's package starts it by default; policy-rc.d answering 101 forbids
    # that, so no Prometheus server is left listening on this machine.
    ours = not _POLICY_RC.exists()
    before = _pids_of("/usr/bin/prometheus")
    try:
        if ours:
            _POLICY_RC.write_text(
                "#!/bin/sh\n# Written by dspex_runtime.testing.tools.\nexit 101\n"
            )
            _POLICY_RC.chmod(0o755)
        _run(["apt-get", "update", "-qq", *wait_for_lock], env=env)
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *wait_for_lock]
        _run([*install, package], env=env)
    finally:
        if ours:
            _POLICY_RC.unlink(missing_ok=True)
        for pid in _pids_of("/usr/bin/prometheus") - before:
            # Started by this install despite the policy: ours to stop.
            os.kill(pid, 15)


def _pids_of(executable: str) -> set[int]:
    pids = set()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(entry / "exe") == executable:
                pids.add(int(entry.name))
        except OSError:
            continue
    return pids


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    """Run an install step; :class:`_Unavailable` with the tail of its output if it fails."""
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise _Unavailable(f"{' '.join(command[:3])}: {e}") from e
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-2000:]
        raise _Unavailable(f"{' '.join(command[:3])} exited {done.returncode}: {output}")


@contextmanager
def _locked(name: str) -> Iterator[None]:
    # Test processes started side by side must not run two installs into one folder.
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _record(what: str, reason: str) -> None:
    _reasons[what] = reason
    print(f"{what} unavailable: {reason}", file=sys.stderr)
