"""The SDK's connection: NATS (URL from the argument, ``$DSPEX_NATS_URL`` or the embedded
stack), JetStream, the registry's reads with their errors as the SDK's, and how a program
is named in an event (a reference or an inline spec)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from nats.aio.client import Client
from nats.js import JetStreamContext

from dspex_contracts import ProgramRef, ProgramSource
from dspex_kernel import DSPExError, ProgramSpec
from dspex_runtime.registry_client import (
    RegistryClient,
    RegistryError,
    RegistryUnavailable,
    UnknownProgram,
    UnknownRun,
)

from . import bus
from .errors import InvalidInput, NotConnected, NotFound, RemoteError
from .stackfile import resolve_nats_url

__all__ = ["ClientBase", "ProgramLike", "as_spec", "program_source", "registry_errors"]

ProgramLike = str | ProgramRef | ProgramSpec | Mapping[str, Any]
"""A registered program's name (latest version), a reference, or an inline spec."""


def as_spec(spec: ProgramSpec | Mapping[str, Any]) -> ProgramSpec:
    if isinstance(spec, ProgramSpec):
        return spec
    try:
        return ProgramSpec.from_data(dict(spec))
    except DSPExError as e:
        raise InvalidInput(e.message) from e


def program_source(program: ProgramLike, version: int | None = None) -> ProgramSource:
    """What an event names as its program: a reference, or an inline spec."""
    if isinstance(program, str):
        return ProgramSource(ref=ProgramRef(name=program, version=version))
    if isinstance(program, ProgramRef):
        return ProgramSource(ref=program)
    return ProgramSource(spec=as_spec(program).to_data())


class ClientBase:
    """Connection state shared by the SDK's parts."""

    def __init__(
        self,
        nats_url: str | None = None,
        *,
        user: str | None = None,
        password: str | None = None,
        connect_timeout_s: float = 5.0,
        request_timeout_s: float = 30.0,
    ) -> None:
        self.nats_url = resolve_nats_url(nats_url)
        self._user = user
        self._password = password
        self._connect_timeout_s = connect_timeout_s
        self.request_timeout_s = request_timeout_s
        self._nc: Client | None = None
        self._registry: RegistryClient | None = None
        self._started: dict[str, datetime] = {}  # run id -> when this client requested it
        self._execute_seq: dict[str, int] = {}  # request id -> its stream sequence

    async def connect(self) -> Self:
        if self._nc is None or self._nc.is_closed:
            self._nc = await bus.connect(
                self.nats_url,
                user=self._user,
                password=self._password,
                connect_timeout_s=self._connect_timeout_s,
            )
        return self

    async def close(self) -> None:
        if self._registry is not None:
            await self._registry.close()
            self._registry = None
        if self._nc is not None and self._nc.is_connected:
            await self._nc.drain()
        elif self._nc is not None and not self._nc.is_closed:
            await self._nc.close()  # draining needs a server; without one, just stop
        self._nc = None

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise NotConnected("the client is not connected: call connect() first")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        return self.nc.jetstream()

    @property
    def registry(self) -> RegistryClient:
        """The registry's reads (cached program specs), for callers that want them raw."""
        if self._registry is None:
            self._registry = RegistryClient(self.nc, timeout_s=self.request_timeout_s)
        return self._registry


@asynccontextmanager
async def registry_errors() -> AsyncIterator[None]:
    """The registry client's errors as the SDK's."""
    try:
        yield
    except (UnknownProgram, UnknownRun) as e:
        raise NotFound(e.message, code=e.code) from e
    except RegistryUnavailable as e:
        raise NotConnected(
            f"no registry answers: is the DSPEx stack running (`dspex up`)? ({e.message})",
            code=e.code,
        ) from e
    except RegistryError as e:
        raise RemoteError(e.message, code=e.code) from e
