"""Run a Node.js script that can import the pinned npm ``nats`` client: the stand-in for a
non-Python publisher or consumer in integration tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .tools import NODE_NATS, ensure_node_nats, missing_reason

__all__ = ["run_node"]


async def run_node(
    script: str,
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
    node_modules: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` as an ES module (top-level ``await`` works) and return its exit code
    and output; it is killed and ``TimeoutError`` raised after ``timeout_s``.

    The script file is written beside ``node_modules`` (by default the one
    :func:`~dspex_runtime.testing.tools.ensure_node_nats` installs) because ES modules
    resolve packages from the script's folder upwards and ignore ``NODE_PATH``; ``NODE_PATH``
    is set as well for ``require``. ``env`` is added to this process's environment."""
    if node_modules is None:
        node_modules = ensure_node_nats()
        if node_modules is None:
            raise RuntimeError(missing_reason(NODE_NATS))
    scripts = node_modules.parent / "scripts"
    scripts.mkdir(exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".mjs", dir=scripts, delete=False) as handle:
        handle.write(script)
    path = Path(handle.name)
    try:
        process = await asyncio.create_subprocess_exec(
            "node",
            str(path),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {}), "NODE_PATH": str(node_modules)},
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
        except TimeoutError:
            process.kill()
            stdout, stderr = await process.communicate()
            raise TimeoutError(
                f"node script ran over {timeout_s} s; stdout: {stdout.decode()[-2000:]!r}; "
                f"stderr: {stderr.decode()[-2000:]!r}"
            ) from None
        assert process.returncode is not None
        return subprocess.CompletedProcess(
            ["node", str(path)], process.returncode, stdout.decode(), stderr.decode()
        )
    finally:
        path.unlink(missing_ok=True)  # noqa: ASYNC240 - a small local file
