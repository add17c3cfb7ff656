"""Helpers for tests, benchmarks and demos: run the simulated LM as a child process and talk to
its admin endpoints with the standard library only."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from .config import READY_PREFIX

_POLL_S = 0.02


class SimLMStartError(RuntimeError):
    """The server did not print its ready line in time (the message has its stderr tail)."""


def _root(api_base: str) -> str:
    base = api_base.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def _call(url: str, payload: Mapping[str, Any] | None = None, timeout_s: float = 10.0) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read())


def set_config(api_base: str, **changes: Any) -> dict[str, Any]:
    """Change latency/faults of a running server; returns its new configuration."""
    result: dict[str, Any] = _call(f"{_root(api_base)}/admin/config", changes)
    return result


def get_stats(api_base: str) -> dict[str, Any]:
    result: dict[str, Any] = _call(f"{_root(api_base)}/admin/stats")
    return result


def reset_stats(api_base: str) -> None:
    _call(f"{_root(api_base)}/admin/reset-stats", {})


class SimLMProcess:
    """``with SimLMProcess(latency_ms=5) as sim: ... sim.api_base ...`` (``async with`` too).

    stdout and stderr go to temporary files, never to pipes nobody reads."""

    def __init__(
        self,
        *,
        latency_ms: float = 0.0,
        fault_rate: float = 0.0,
        fault_kinds: Iterable[str] | None = None,
        seed: int = 0,
        knowledge: Sequence[str | Path] = (),
        extra_args: Sequence[str] = (),
        ready_timeout_s: float = 30.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.args = [sys.executable, "-m", "dspex_simlm", "--port", "0"]
        self.args += ["--latency-ms", str(latency_ms), "--fault-rate", str(fault_rate)]
        self.args += ["--seed", str(seed)]
        if fault_kinds is not None:
            self.args += ["--fault-kinds", ",".join(fault_kinds)]
        for path in knowledge:
            self.args += ["--knowledge", str(path)]
        self.args += list(extra_args)
        self.ready_timeout_s = ready_timeout_s
        self.env = dict(env) if env is not None else None
        self.api_base = ""
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._stdout: IO[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def start(self) -> SimLMProcess:
        # Files live as long as the child process; stop() closes them.
        self._stdout = tempfile.TemporaryFile()  # noqa: SIM115
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        env = self.env if self.env is not None else dict(os.environ)
        self._process = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=self._stdout, stderr=self._stderr, env=env
        )
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            line = self._ready_line()
            if line:
                self.api_base = line.split()[1]
                self.url = _root(self.api_base)
                return self
            if self._process.poll() is not None:
                break
            time.sleep(_POLL_S)
        code = self._process.poll()
        tail = self.stderr_tail()
        self.stop()
        state = (
            f"exited with {code}" if code is not None else f"not ready in {self.ready_timeout_s}s"
        )
        raise SimLMStartError(f"dspex_simlm {state}; stderr tail:\n{tail}")

    def _ready_line(self) -> str:
        assert self._stdout is not None
        self._stdout.seek(0)
        for raw in self._stdout.read().decode(errors="replace").splitlines():
            if raw.startswith(READY_PREFIX + " "):
                return raw.strip()
        return ""

    def stderr_tail(self, chars: int = 2000) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-chars:]

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        self._process = None
        for handle in (self._stdout, self._stderr):
            if handle is not None:
                handle.close()
        self._stdout = self._stderr = None

    def set_config(self, **changes: Any) -> dict[str, Any]:
        return set_config(self.api_base, **changes)

    def stats(self) -> dict[str, Any]:
        return get_stats(self.api_base)

    def reset_stats(self) -> None:
        reset_stats(self.api_base)

    def __enter__(self) -> SimLMProcess:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> SimLMProcess:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)
