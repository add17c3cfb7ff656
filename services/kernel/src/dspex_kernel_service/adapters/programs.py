"""Where registered programs come from. A small port with an in-memory implementation, one
over a folder of spec files, and the registry (over NATS request/reply)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from pathlib import Path

from nats.aio.client import Client

from dspex_kernel import DSPExError, ProgramSpec
from dspex_runtime.registry_client import RegistryClient, RegistryUnavailable, UnknownProgram


class UnknownProgramError(DSPExError):
    code = "unknown_program"
    status = 404


class ProgramStore(ABC):
    """Looks up registered programs. ``get`` returns the given version, or the latest when
    ``version`` is None, or raises :class:`UnknownProgramError`. Returned specs are not
    mutated by callers."""

    @abstractmethod
    async def get(self, name: str, version: int | None = None) -> ProgramSpec: ...


class InMemoryProgramStore(ProgramStore):
    def __init__(self, specs: list[ProgramSpec] | None = None) -> None:
        self._specs: dict[tuple[str, int], ProgramSpec] = {}
        for spec in specs or []:
            self.add(spec)

    def add(self, spec: ProgramSpec) -> None:
        self._specs[(spec.name, spec.version)] = spec

    async def get(self, name: str, version: int | None = None) -> ProgramSpec:
        if version is None:
            versions = [v for (n, v) in self._specs if n == name]
            if not versions:
                raise UnknownProgramError(f"no program named {name!r} is registered")
            version = max(versions)
        try:
            return self._specs[(name, version)]
        except KeyError:
            raise UnknownProgramError(
                f"program {name!r} has no version {version} registered"
            ) from None


class DirectoryProgramStore(InMemoryProgramStore):
    """Every ``*.yaml``, ``*.yml`` and ``*.json`` spec in a folder, read once at start."""

    def __init__(self, folder: Path) -> None:
        specs = [
            ProgramSpec.load(path)
            for pattern in ("*.yaml", "*.yml", "*.json")
            for path in sorted(folder.glob(pattern))
        ]
        super().__init__(specs)


class RegistryProgramStore(ProgramStore):
    """Programs from the registry, over NATS request/reply. The registry client caches the
    answers and drops a name's latest version when ProgramUpdated announces a new one;
    parsed specs are kept by exact version, which never changes. A registry that does not
    answer raises a retryable error, so the request is tried again later."""

    def __init__(self, *, timeout_s: float = 5.0, max_cached: int = 256) -> None:
        self.timeout_s = timeout_s
        self.max_cached = max_cached
        self._client: RegistryClient | None = None
        self._specs: OrderedDict[tuple[str, int], ProgramSpec] = OrderedDict()

    async def start(self, nc: Client) -> None:
        """Connect to the registry through ``nc`` and follow its announcements."""
        client = RegistryClient(nc, timeout_s=self.timeout_s)
        await client.start()
        self._client = client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def get(self, name: str, version: int | None = None) -> ProgramSpec:
        if self._client is None:
            raise RegistryUnavailable("the kernel is not connected to the registry yet")
        try:
            info = await self._client.get_program_info(name, version)
        except UnknownProgram as e:
            raise UnknownProgramError(e.message) from e
        key = (info.name, info.version)
        spec = self._specs.get(key)
        if spec is None:
            spec = ProgramSpec.from_data(info.spec)
            self._specs[key] = spec
            while len(self._specs) > self.max_cached:
                self._specs.popitem(last=False)
        else:
            self._specs.move_to_end(key)
        return spec
