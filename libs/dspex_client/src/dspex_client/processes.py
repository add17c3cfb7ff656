"""Child processes of the embedded stack: start one with its output in a log file (never an
unread pipe), wait until it is ready (a TCP greeting, a ready line, or an HTTP probe), and
stop a group of them: SIGTERM, wait, then SIGKILL whatever is left."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = ["Child", "StackError", "free_port", "port_is_free", "spawn", "stop_all", "wait_ready"]

_POLL_S = 0.1
_PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    """A part of the stack could not start; the message has the end of its log."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Child:
    """One process of the stack: ``name`` is unique (``evaluator-2``), ``kind`` is what it
    is (``nats``, ``simlm``, ``registry``, ...), ``url`` what it serves."""

    name: str
    kind: str
    process: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""
    http_port: int | None = None
    log: IO[bytes] | None = field(default=None, repr=False)
    exit_reported: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""


def _die_with_parent() -> None:
    # Runs in the child before exec: if the supervisor is killed outright, the kernel sends
    # the child SIGTERM, so no orphaned service keeps NATS or a port busy.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    name: str,
    kind: str,
    argv: Sequence[str],
    *,
    log_dir: Path,
    env: Mapping[str, str],
    url: str = "",
    http_port: int | None = None,
) -> Child:
    """Start ``argv`` with stdout and stderr in ``log_dir/<name>.log``, in its own session
    (a Ctrl-C in the terminal reaches only the supervisor, which stops children in order)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed when the child is stopped
    try:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    except OSError as e:
        log.close()
        raise StackError(f"cannot start {name}: {e}") from e
    return Child(name, kind, process, log_path, url=url, http_port=http_port, log=log)


def _ready_check(child: Child) -> Callable[[], bool]:
    if child.kind == "nats":
        port = int(child.url.rsplit(":", 1)[1])
        return lambda: _nats_greets(port)
    if child.http_port is not None:
        return lambda: _http_ok(f"http://127.0.0.1:{child.http_port}/readyz")
    return lambda: True


def _nats_greets(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            return sock.recv(4).startswith(b"INFO")  # the server greets clients it can serve
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_ready(children: Sequence[Child], *, timeout_s: float) -> None:
    """Wait until every child is ready; StackError names the first that exited or is late."""
    checks = {child.name: _ready_check(child) for child in children}
    pending = list(children)
    deadline = time.monotonic() + timeout_s
    while pending:
        for child in list(pending):
            if not child.running:
                raise StackError(
                    f"{child.name} exited with code {child.process.returncode} while starting; "
                    f"end of {child.log_path}:\n{child.log_tail()}"
                )
            if checks[child.name]():
                pending.remove(child)
        if not pending:
            return
        if time.monotonic() > deadline:
            late = pending[0]
            raise StackError(
                f"{late.name} was not ready within {timeout_s:.0f} s; end of "
                f"{late.log_path}:\n{late.log_tail()}"
            )
        time.sleep(_POLL_S)


def stop_all(children: Sequence[Child], *, timeout_s: float) -> None:
    """SIGTERM every child, wait up to ``timeout_s`` for all of them, SIGKILL the rest."""
    for child in children:
        if child.running:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for child in children:
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                child.process.kill()
            child.process.wait()
        if child.log is not None:
            child.log.close()
            child.log = None


def read_ready_line(child: Child, prefix: str, *, timeout_s: float) -> str:
    """The rest of the first log line starting with ``prefix`` (how the simulated LM says
    where it listens)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in child.log_tail(1_000_000).splitlines():
            if line.startswith(prefix + " "):
                return line[len(prefix) + 1 :].strip()
        if not child.running:
            break
        time.sleep(_POLL_S / 2)
    state = "exited" if not child.running else f"not ready in {timeout_s:.0f} s"
    raise StackError(f"{child.name} {state}; end of {child.log_path}:\n{child.log_tail()}")


def python_module(module: str, *args: str) -> list[str]:
    """argv running ``python -m module`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment plus ``extra``."""
    return {**os.environ, **extra}
