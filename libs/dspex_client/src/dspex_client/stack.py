"""The embedded stack as ``dspex up`` (and ``make demo``) runs it on one machine: nats-server
from the wheel with JetStream under the data folder, the simulated LM unless a model is
named, and the four services as child processes, each with its own environment, HTTP port
and log file. ``with Stack(StackOptions(...)) as stack: ...`` starts and stops it all."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from . import processes
from .processes import Child, StackError
from .stackfile import remove_stack_file, write_stack_file

__all__ = ["SERVICES", "SIM_API_KEY", "SIM_MODEL", "Stack", "StackError", "StackOptions"]

# Service kind -> the module that runs one replica of it.
SERVICES: dict[str, str] = {
    "registry": "dspex_registry",
    "kernel": "dspex_kernel_service",
    "evaluator": "dspex_evaluator",
    "optimizer": "dspex_optimizer",
}
LM_SERVICES = ("kernel", "evaluator", "optimizer")
SIM_MODEL = "openai/sim-base"
SIM_API_KEY = "sk-simulated"
NATS_DEFAULT_PORT = 4222


@dataclass(frozen=True)
class StackOptions:
    """What to run. ``nats_url`` set: use that NATS instead of starting one (else one is
    started on ``nats_port``: None means 4222 when free, 0 any free port); ``lm_model`` set:
    use that model (and ``lm_api_base``) instead of the simulated LM. ``env`` is added to
    every service's environment, ``kind_env[kind]`` to that of each replica of ``kind`` only
    (e.g. a shorter ``DSPEX_ACK_WAIT_S`` for the optimizer). ``nats_auth``: the NATS the stack
    starts gets one user per service, limited to its subjects
    (:mod:`dspex_runtime.permissions`), and a ``client`` user for the SDK and CLI, with new
    random passwords each start (the client's in ``nats-client.password``, mode 0600)."""

    data_dir: Path
    nats_url: str | None = None
    nats_port: int | None = None
    database_url: str | None = None
    lm_model: str | None = None
    lm_api_base: str | None = None
    evaluators: int = 1
    kernels: int = 1
    http_base_port: int | None = None
    services: tuple[str, ...] = tuple(SERVICES)
    sim_latency_ms: float = 0.0
    ready_timeout_s: float = 120.0
    stop_timeout_s: float = 20.0
    log_level: str = "INFO"
    env: Mapping[str, str] = field(default_factory=dict)
    kind_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    nats_auth: bool = False

    def replicas(self, kind: str) -> int:
        return {"evaluator": self.evaluators, "kernel": self.kernels}.get(kind, 1)


class Stack:
    """Starts the stack in order (NATS, LM, services), waits until every service's /readyz
    answers, and stops it in reverse order. It restarts nothing by itself.

    Call :meth:`start` from a thread that outlives the stack (the main thread): on Linux
    the children are told to stop when the thread that started them ends, so that a killed
    supervisor leaves no orphans behind."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.data_dir = options.data_dir.expanduser().resolve()
        self.log_dir = self.data_dir / "logs"
        self.nats_url = options.nats_url or ""
        self.lm_api_base = options.lm_api_base
        self.lm_model = options.lm_model or SIM_MODEL
        self.simulated = options.lm_model is None
        default_db = f"sqlite+aiosqlite:///{self.data_dir / 'registry.db'}"
        self.database_url = options.database_url or default_db
        self.nats: Child | None = None
        self.simlm: Child | None = None
        self.services: list[Child] = []
        self.started_at: datetime | None = None
        self._ports: Iterator[int] = iter(())
        self.nats_passwords: dict[str, str] = {}  # user -> password, with nats_auth

    @property
    def children(self) -> list[Child]:
        return [c for c in (self.nats, self.simlm) if c is not None] + self.services

    @property
    def explorer_url(self) -> str | None:
        """The run explorer's page, served by the (first) registry replica."""
        for child in self.services:
            if child.name == "registry" and child.url:
                return f"{child.url}/ui"
        return None

    # -- start ---------------------------------------------------------------------------

    def start(self) -> Self:
        for kind in self.options.services:
            if kind not in SERVICES:
                raise StackError(f"unknown service {kind!r}; known: {list(SERVICES)}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            if not self.options.nats_url:
                self._start_nats()
            if self.simulated:
                self._start_simlm()
            self._start_services()
            processes.wait_ready(self.services, timeout_s=self.options.ready_timeout_s)
        except BaseException:
            self.stop()
            raise
        self.started_at = datetime.now(UTC)
        write_stack_file(self.data_dir, self.info())
        return self

    def _start_nats(self) -> None:
        from dspex_runtime.testing.nats import nats_server_binary

        port = self.options.nats_port
        if port is None and processes.port_is_free(NATS_DEFAULT_PORT):
            port = NATS_DEFAULT_PORT
        port = port or processes.free_port()
        config = {
            "listen": f"127.0.0.1:{port}",
            # Acknowledged writes survive a crash only when fsynced at once.
            "jetstream": {
                "store_dir": str(self.data_dir / "jetstream"),
                "sync_interval": "always",
            },
        }
        if self.options.nats_auth:
            config["authorization"] = self._nats_authorization()
        conf = self.data_dir / "nats-server.conf"
        # The server's configuration format accepts JSON values after each top-level key.
        conf.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in config.items()))
        self.nats_url = f"nats://127.0.0.1:{port}"
        self.nats = processes.spawn(
            "nats",
            "nats",
            [str(nats_server_binary()), "-c", str(conf)],
            log_dir=self.log_dir,
            env=processes.environment({}),
            url=self.nats_url,
        )
        processes.wait_ready([self.nats], timeout_s=30.0)

    def _nats_authorization(self) -> dict[str, Any]:
        from dspex_runtime.permissions import CLIENT, SERVICE_PERMISSIONS, authorization_config

        self.nats_passwords = {name: secrets.token_urlsafe(24) for name in SERVICE_PERMISSIONS}
        password_file = self.data_dir / "nats-client.password"
        password_file.touch(mode=0o600)
        password_file.chmod(0o600)
        password_file.write_text(self.nats_passwords[CLIENT] + "\n", encoding="utf-8")
        return authorization_config(self.nats_passwords)

    def _start_simlm(self) -> None:
        from dspex_simlm.config import READY_PREFIX

        argv = processes.python_module(
            "dspex_simlm", "--port", "0", "--latency-ms", str(self.options.sim_latency_ms)
        )
        self.simlm = processes.spawn(
            "simlm", "simlm", argv, log_dir=self.log_dir, env=processes.environment({})
        )
        self.lm_api_base = processes.read_ready_line(self.simlm, READY_PREFIX, timeout_s=30.0)
        self.simlm.url = self.lm_api_base

    def _next_port(self) -> int:
        if self.options.http_base_port is None:
            return processes.free_port()
        port: int = next(self._ports)
        return port

    def _start_services(self) -> None:
        if self.options.http_base_port is not None:
            self._ports = iter(range(self.options.http_base_port, 65536))
        for kind in self.options.services:
            count = self.options.replicas(kind)
            for replica in range(1, count + 1):
                name = kind if count == 1 else f"{kind}-{replica}"
                port = self._next_port()
                env = processes.environment(self.service_env(kind, port))
                argv = processes.python_module(SERVICES[kind])
                url = f"http://127.0.0.1:{port}"
                child = processes.spawn(
                    name, kind, argv, log_dir=self.log_dir, env=env, url=url, http_port=port
                )
                self.services.append(child)

    def service_env(self, kind: str, http_port: int) -> dict[str, str]:
        """The ``DSPEX_*`` environment of one replica of ``kind``."""
        env = {
            "DSPEX_NATS_URL": self.nats_url,
            "DSPEX_HTTP_PORT": str(http_port),
            "DSPEX_LOG_LEVEL": self.options.log_level,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "PYTHONUNBUFFERED": "1",
        }
        if kind in self.nats_passwords:
            env["DSPEX_NATS_USER"] = kind
            env["DSPEX_NATS_PASSWORD"] = self.nats_passwords[kind]
        if kind == "registry":
            env["DSPEX_DATABASE_URL"] = self.database_url
            # One machine, nothing to run by hand: the schema is brought up to date at start,
            # on PostgreSQL too (a cluster runs `python -m dspex_registry migrate` instead).
            env["DSPEX_AUTO_MIGRATE"] = "true"
        if kind in LM_SERVICES:
            env["DSPEX_LM_MODEL"] = self.lm_model
            if self.lm_api_base:
                env["DSPEX_LM_API_BASE"] = self.lm_api_base
            if self.simulated:
                from dspex_simlm import PRICES

                env["DSPEX_LM_API_KEY"] = SIM_API_KEY
                # The simulated models have no litellm price; these make cost budgets work.
                env["DSPEX_LM_PRICES"] = json.dumps(PRICES)
        env.update(self.options.env)
        env.update(self.options.kind_env.get(kind, {}))
        return env

    # -- run and stop --------------------------------------------------------------------

    def exited(self) -> list[Child]:
        """Children that exited since the last call (each reported once)."""
        gone = [c for c in self.children if not c.running and not c.exit_reported]
        for child in gone:
            child.exit_reported = True
        return gone

    def stop(self) -> None:
        """Services first (they drain while NATS is still there), then the LM, then NATS."""
        timeout = self.options.stop_timeout_s
        processes.stop_all(self.services, timeout_s=timeout)
        processes.stop_all([c for c in (self.simlm,) if c is not None], timeout_s=timeout)
        processes.stop_all([c for c in (self.nats,) if c is not None], timeout_s=timeout)
        remove_stack_file(self.data_dir, os.getpid())

    def info(self) -> dict[str, Any]:
        """What ``stack.json`` records: where everything runs."""
        info: dict[str, Any] = {
            "pid": os.getpid(),
            "started_at": (self.started_at or datetime.now(UTC)).isoformat(),
            "data_dir": str(self.data_dir),
            "nats_url": self.nats_url,
            "database_url": self.database_url,
            "lm_model": self.lm_model,
            "lm_api_base": self.lm_api_base,
            "simulated_lm": self.simulated,
            "processes": [
                {
                    "name": c.name,
                    "kind": c.kind,
                    "pid": c.pid,
                    "url": c.url,
                    "log": str(c.log_path),
                }
                for c in self.children
            ],
        }
        if self.nats_passwords:
            info["nats_user"] = "client"
            info["nats_password_file"] = str(self.data_dir / "nats-client.password")
        return info

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def wait_forever(stack: Stack, on_exit: Callable[[Child], None], *, poll_s: float = 0.5) -> None:
    """Block (until KeyboardInterrupt) and report each child that exits to ``on_exit``."""
    while True:
        for child in stack.exited():
            on_exit(child)
        time.sleep(poll_s)
