"""Where registered programs come from. A small port with an in-memory implementation and
one over a folder of spec files; the registry-backed one joins them with the registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from dspex_kernel import DSPExError, ProgramSpec


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
