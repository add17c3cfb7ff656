"""Which program a run optimizes: an inline spec as it is, or a registered one fetched from
the registry (by request/reply); the resolved version is pinned for the whole run."""

from __future__ import annotations

from abc import ABC, abstractmethod

from dspex_contracts import ProgramSource
from dspex_kernel import ProgramSpec
from dspex_runtime.registry_client import RegistryClient, UnknownProgram

__all__ = ["InMemoryPrograms", "ProgramResolver", "RegistryPrograms"]


class ProgramResolver(ABC):
    """Turns a request's program into a spec. Raises a DSPExError: ``invalid_program`` for
    a bad inline spec, ``unknown_program`` when it is not registered, a retryable one when
    the registry does not answer."""

    async def resolve(self, source: ProgramSource) -> ProgramSpec:
        if source.spec is not None:
            return ProgramSpec.from_data(source.spec)
        assert source.ref is not None  # the contract guarantees exactly one of the two
        return await self.get(source.ref.name, source.ref.version)

    @abstractmethod
    async def get(self, name: str, version: int | None) -> ProgramSpec: ...


class RegistryPrograms(ProgramResolver):
    """Registered programs, read through the registry's request/reply API (cached)."""

    def __init__(self, client: RegistryClient) -> None:
        self._client = client

    async def get(self, name: str, version: int | None) -> ProgramSpec:
        return ProgramSpec.from_data(await self._client.get_program(name, version))


class InMemoryPrograms(ProgramResolver):
    def __init__(self, specs: list[ProgramSpec] | None = None) -> None:
        self.specs = {(s.name, s.version): s for s in specs or []}

    async def get(self, name: str, version: int | None) -> ProgramSpec:
        versions = [v for (n, v) in self.specs if n == name]
        if version is None and versions:
            version = max(versions)
        spec = self.specs.get((name, version or 0))
        if spec is None:
            raise UnknownProgram(f"no program {name!r} version {version} is registered")
        return spec
