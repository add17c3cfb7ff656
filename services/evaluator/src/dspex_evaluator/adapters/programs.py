"""Where the program of a proposal comes from: inline in the event, or registered and read
through the registry. A small port with an in-memory implementation for tests and one over
the registry's request/reply API."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING

from dspex_contracts import ProgramSource
from dspex_kernel import DSPExError, ProgramSpec

if TYPE_CHECKING:
    from dspex_runtime.registry_client import RegistryClient


class UnknownProgramError(DSPExError):
    code = "unknown_program"
    status = 404


class ProgramResolver(ABC):
    """Turns a proposal's ProgramSource into a ProgramSpec. An inline spec is parsed as it
    is (``ProgramError`` when invalid); a reference is looked up: a name or version that is
    not registered raises a DSPExError with code ``unknown_program``, a source that cannot
    answer now raises a retryable one. Returned specs are not mutated by callers."""

    async def resolve(self, source: ProgramSource) -> ProgramSpec:
        if source.ref is not None:
            return await self.registered(source.ref.name, source.ref.version)
        assert source.spec is not None  # the contract guarantees exactly one of the two
        return ProgramSpec.from_data(source.spec)

    @abstractmethod
    async def registered(self, name: str, version: int | None) -> ProgramSpec:
        """The registered program ``name`` at ``version`` (the latest when None)."""


class InMemoryPrograms(ProgramResolver):
    def __init__(self, specs: Iterable[ProgramSpec] = ()) -> None:
        self._specs = {(spec.name, spec.version): spec for spec in specs}

    async def registered(self, name: str, version: int | None) -> ProgramSpec:
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


class RegistryPrograms(ProgramResolver):
    """Programs from the registry service. The client caches what the registry answers
    (the latest version until a ProgramUpdated announces a newer one); the parsed specs of
    exact versions, which never change, are kept here so that a run's many proposals parse
    their program once."""

    def __init__(self, client: RegistryClient, *, max_parsed: int = 256) -> None:
        self.client = client
        self._parsed: OrderedDict[tuple[str, int], ProgramSpec] = OrderedDict()
        self._max_parsed = max_parsed

    async def registered(self, name: str, version: int | None) -> ProgramSpec:
        info = await self.client.get_program_info(name, version)
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
