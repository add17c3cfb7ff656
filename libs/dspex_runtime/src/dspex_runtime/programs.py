"""Where a service gets the program an event names: inline in the event, or registered and
read through the registry. One port with an in-memory implementation, one over a folder of
spec files and one over the registry, shared by every service that runs programs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from nats.aio.client import Client

from dspex_contracts import ProgramSource
from dspex_kernel import ProgramSpec

from .registry_client import RegistryClient, RegistryUnavailable, UnknownProgram

__all__ = [
    "DirectoryProgramStore",
    "InMemoryProgramStore",
    "ProgramStore",
    "RegistryProgramStore",
    "UnknownProgram",
]


class ProgramStore(ABC):
    """Turns a ProgramSource into a ProgramSpec. An inline spec is parsed as it is
    (``ProgramError`` when invalid); a reference is looked up with :meth:`get`, which
    returns the given version or the latest when ``version`` is None, raises
    :class:`UnknownProgram` (code ``unknown_program``) when it is not registered, and a
    retryable error when its source cannot answer now. Callers do not mutate the specs."""

    async def resolve(self, source: ProgramSource) -> ProgramSpec:
        if source.ref is not None:
            return await self.get(source.ref.name, source.ref.version)
        assert source.spec is not None  # the contract guarantees exactly one of the two
        return ProgramSpec.from_data(source.spec)

    @abstractmethod
    async def get(self, name: str, version: int | None = None) -> ProgramSpec: ...


class InMemoryProgramStore(ProgramStore):
    def __init__(self, specs: Iterable[ProgramSpec] = ()) -> None:
        self._specs: dict[tuple[str, int], ProgramSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: ProgramSpec) -> None:
        self._specs[(spec.name, spec.version)] = spec

    async def get(self, name: str, version: int | None = None) -> ProgramSpec:
        if version is None:
            versions = [v for (n, v) in self._specs if n == name]
            if not versions:
                raise UnknownProgram(f"no program named {name!r} is registered")
            version = max(versions)
        try:
            return self._specs[(name, version)]
        except KeyError:
            raise UnknownProgram(f"program {name!r} has no version {version} registered") from None


class DirectoryProgramStore(InMemoryProgramStore):
    """Every ``*.yaml``, ``*.yml`` and ``*.json`` spec in a folder, read once at start."""

    def __init__(self, folder: Path) -> None:
        super().__init__(
            ProgramSpec.load(path)
            for pattern in ("*.yaml", "*.yml", "*.json")
            for path in sorted(folder.glob(pattern))
        )


class RegistryProgramStore(ProgramStore):
    """Programs from the registry over NATS request/reply. The registry client caches the
    answers and drops a name's latest version when ProgramUpdated announces a new one;
    parsed specs are kept here by exact version, which never changes, so that many events
    naming one program parse it once. Give it a started client, or call :meth:`start`."""

    def __init__(
        self,
        client: RegistryClient | None = None,
        *,
        timeout_s: float = 5.0,
        max_parsed: int = 256,
    ) -> None:
        self._client = client
        self._owns_client = False
        self.timeout_s = timeout_s
        self._max_parsed = max_parsed
        self._parsed: OrderedDict[tuple[str, int], ProgramSpec] = OrderedDict()

    async def start(self, nc: Client) -> None:
        """Connect to the registry through ``nc`` and follow its announcements."""
        client = RegistryClient(nc, timeout_s=self.timeout_s)
        await client.start()
        self._client, self._owns_client = client, True

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            await client.close()

    async def get(self, name: str, version: int | None = None) -> ProgramSpec:
        if self._client is None:
            raise RegistryUnavailable("not connected to the registry yet")
        info = await self._client.get_program_info(name, version)
        key = (info.name, info.version)
        spec = self._parsed.get(key)
        if spec is None:
            spec = ProgramSpec.from_data(info.spec)
            self._parsed[key] = spec
            while len(self._parsed) > self._max_parsed:
                self._parsed.popitem(last=False)
        else:
            self._parsed.move_to_end(key)
        return spec
