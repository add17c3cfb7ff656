"""The registry's reads, as plain functions of (store, request) that return the reply's
data or raise an error with a stable code. The request/reply edge maps them to subjects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from dspex_contracts import (
    CandidateInfo,
    DatasetGetRequest,
    DatasetInfo,
    ProgramGetRequest,
    ProgramInfo,
    ProgramListRequest,
    ProgramSummary,
    ProgramVersionsRequest,
    RunCandidatesRequest,
    RunGetRequest,
    RunInfo,
    RunListRequest,
)

from .domain import ProgramVersion, RegistryStore, UnknownDataset, UnknownProgram, UnknownRun

Query = Callable[[RegistryStore, Any], Awaitable[Any]]


def program_info(stored: ProgramVersion) -> ProgramInfo:
    return ProgramInfo.model_validate(asdict(stored))


async def program_get(store: RegistryStore, request: ProgramGetRequest) -> ProgramInfo:
    stored = await store.get_program(request.name, request.version)
    if stored is None:
        if request.version is None or await store.get_program(request.name) is None:
            raise UnknownProgram(f"no program named {request.name!r} is registered")
        raise UnknownProgram(f"program {request.name!r} has no version {request.version}")
    return program_info(stored)


async def program_list(store: RegistryStore, request: ProgramListRequest) -> list[ProgramSummary]:
    return [ProgramSummary.model_validate(asdict(s)) for s in await store.list_programs()]


async def program_versions(
    store: RegistryStore, request: ProgramVersionsRequest
) -> list[ProgramInfo]:
    versions = await store.program_versions(request.name)
    if not versions:
        raise UnknownProgram(f"no program named {request.name!r} is registered")
    return [program_info(v) for v in versions]


async def run_get(store: RegistryStore, request: RunGetRequest) -> RunInfo:
    run = await store.get_run(request.run_id)
    if run is None:
        raise UnknownRun(f"no run {request.run_id!r} is recorded")
    return RunInfo.model_validate(asdict(run))


async def run_list(store: RegistryStore, request: RunListRequest) -> list[RunInfo]:
    found = await store.list_runs(
        status=request.status, program=request.program, limit=request.limit
    )
    return [RunInfo.model_validate(asdict(r)) for r in found]


async def run_candidates(
    store: RegistryStore, request: RunCandidatesRequest
) -> list[CandidateInfo]:
    found = await store.run_candidates(request.run_id, limit=request.limit)
    if not found and await store.get_run(request.run_id) is None:
        raise UnknownRun(f"no run {request.run_id!r} is recorded")
    return [CandidateInfo.model_validate(asdict(c)) for c in found]


async def dataset_get(store: RegistryStore, request: DatasetGetRequest) -> DatasetInfo:
    found = await store.get_dataset(request.id)
    if found is None:
        raise UnknownDataset(f"no run has named dataset {request.id}")
    return DatasetInfo.model_validate(asdict(found))


QUERIES: dict[str, Query] = {
    "program.get": program_get,
    "program.list": program_list,
    "program.versions": program_versions,
    "run.get": run_get,
    "run.list": run_list,
    "run.candidates": run_candidates,
    "dataset.get": dataset_get,
}
"""Operation (see ``dspex_contracts.REGISTRY_OPS``) -> query."""
