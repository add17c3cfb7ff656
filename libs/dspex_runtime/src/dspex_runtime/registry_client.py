"""A client of the registry's reads over NATS request/reply, for services, the CLI and the
SDK. Program specs are cached: exact versions for good (they never change), the latest
version of a name until a ProgramUpdated announces a newer one (or a TTL, in case an
announcement was missed while disconnected)."""

from __future__ import annotations

import asyncio
import copy
import time
from collections import OrderedDict
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel, TypeAdapter, ValidationError

from dspex_contracts import (
    REGISTRY_OPS,
    CandidateInfo,
    DatasetInfo,
    ProgramInfo,
    ProgramSummary,
    ProgramUpdated,
    RpcReply,
    RunInfo,
    RunStatus,
    registry_subject,
    subjects,
)
from dspex_kernel.errors import DSPExError

__all__ = [
    "RegistryClient",
    "RegistryError",
    "RegistryUnavailable",
    "UnknownProgram",
    "UnknownRun",
]

T = TypeVar("T")


class RegistryError(DSPExError):
    """The registry answered with an error; ``code`` is its stable code."""

    code = "registry_error"
    status = 502

    def __init__(self, message: str, *, code: str | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.retryable = retryable or type(self).retryable


class UnknownProgram(RegistryError):
    code = "unknown_program"
    status = 404


class UnknownRun(RegistryError):
    code = "unknown_run"
    status = 404


class RegistryUnavailable(RegistryError):
    """No registry answered in time (none running, overloaded, or NATS away): retry."""

    code = "registry_unavailable"
    status = 503
    retryable = True


_PROGRAM = TypeAdapter(ProgramInfo)
_PROGRAMS = TypeAdapter(list[ProgramInfo])
_SUMMARIES = TypeAdapter(list[ProgramSummary])
_RUN = TypeAdapter(RunInfo)
_RUNS = TypeAdapter(list[RunInfo])
_CANDIDATES = TypeAdapter(list[CandidateInfo])
_DATASET = TypeAdapter(DatasetInfo)

_ERRORS: dict[str, type[RegistryError]] = {
    UnknownProgram.code: UnknownProgram,
    UnknownRun.code: UnknownRun,
}


class RegistryClient:
    """Reads of the registry. :meth:`start` subscribes to ProgramUpdated for cache
    invalidation (done on the first :meth:`get_program` otherwise); :meth:`close`
    unsubscribes. The NATS connection belongs to the caller."""

    def __init__(
        self,
        nc: Client,
        *,
        timeout_s: float = 5.0,
        latest_ttl_s: float = 60.0,
        max_cached: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._nc = nc
        self.timeout_s = timeout_s
        self.latest_ttl_s = latest_ttl_s
        self.max_cached = max_cached
        self._clock = clock
        self._versions: OrderedDict[tuple[str, int], ProgramInfo] = OrderedDict()
        self._latest: dict[str, tuple[ProgramInfo, float]] = {}
        # Bumped by every announcement of a name: an answer to a request sent before the
        # announcement may be stale and is not cached as the latest.
        self._generation: dict[str, int] = {}
        self._subscription: Subscription | None = None
        self._starting = asyncio.Lock()
        self.requests = 0  # requests sent, for tests and metrics

    async def start(self) -> None:
        async with self._starting:
            if self._subscription is None:
                self._subscription = await self._nc.subscribe(
                    subjects.PROGRAM_UPDATED, cb=self._on_updated
                )

    async def close(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None and not self._nc.is_closed:
            await subscription.unsubscribe()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- programs -----------------------------------------------------------------------

    async def get_program(self, name: str, version: int | None = None) -> dict[str, Any]:
        """The ProgramSpec (JSON form) of ``name`` at ``version``, or its latest; a copy
        the caller may change. Raises :class:`UnknownProgram` or :class:`RegistryUnavailable`."""
        info = await self.get_program_info(name, version)
        return copy.deepcopy(info.spec)

    async def get_program_info(self, name: str, version: int | None = None) -> ProgramInfo:
        """Like :meth:`get_program` with the version's metadata; shared with the cache, so
        do not change it."""
        if self._subscription is None:
            await self.start()
        cached = self._cached(name, version)
        if cached is not None:
            return cached
        generation = self._generation.get(name, 0)
        info = await self._call("program.get", {"name": name, "version": version}, _PROGRAM)
        self._remember(info)
        if version is None and self._generation.get(name, 0) == generation:
            self._latest[name] = (info, self._clock())
        return info

    async def list_programs(self) -> list[ProgramSummary]:
        return await self._call("program.list", {}, _SUMMARIES)

    async def program_versions(self, name: str) -> list[ProgramInfo]:
        return await self._call("program.versions", {"name": name}, _PROGRAMS)

    def invalidate(self, name: str | None = None) -> None:
        """Forget the cached latest version of ``name`` (of every name when None)."""
        names = [name] if name is not None else list(self._latest)
        for each in names:
            self._latest.pop(each, None)
            self._generation[each] = self._generation.get(each, 0) + 1

    # -- runs and datasets --------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunInfo:
        return await self._call("run.get", {"run_id": run_id}, _RUN)

    async def list_runs(
        self, *, status: RunStatus | str | None = None, program: str | None = None, limit: int = 50
    ) -> list[RunInfo]:
        request = {"status": status, "program": program, "limit": limit}
        return await self._call("run.list", request, _RUNS)

    async def run_candidates(self, run_id: str, *, limit: int = 1000) -> list[CandidateInfo]:
        request = {"run_id": run_id, "limit": limit}
        return await self._call("run.candidates", request, _CANDIDATES)

    async def get_dataset(self, dataset_id: str) -> DatasetInfo:
        return await self._call("dataset.get", {"id": dataset_id}, _DATASET)

    # -- internals ----------------------------------------------------------------------

    def _cached(self, name: str, version: int | None) -> ProgramInfo | None:
        if version is not None:
            found = self._versions.get((name, version))
            if found is not None:
                self._versions.move_to_end((name, version))
            return found
        latest = self._latest.get(name)
        if latest is None:
            return None
        info, at = latest
        if self._clock() - at > self.latest_ttl_s:
            del self._latest[name]
            return None
        return info

    def _remember(self, info: ProgramInfo) -> None:
        self._versions[(info.name, info.version)] = info
        self._versions.move_to_end((info.name, info.version))
        while len(self._versions) > self.max_cached:
            self._versions.popitem(last=False)

    async def _on_updated(self, msg: Msg) -> None:
        try:
            event = ProgramUpdated.model_validate_json(msg.data)
        except ValidationError:
            return  # not ours to judge; the registry's consumers dead-letter bad messages
        self.invalidate(event.payload.name)

    async def _call(self, op: str, request: dict[str, Any], data: TypeAdapter[T]) -> T:
        model: type[BaseModel] = REGISTRY_OPS[op][0]
        body = model.model_validate(request).model_dump_json(exclude_none=True).encode()
        self.requests += 1
        try:
            msg = await self._nc.request(registry_subject(op), body, timeout=self.timeout_s)
        except nats.errors.Error as e:
            raise RegistryUnavailable(
                f"the registry did not answer {op} ({type(e).__name__}: {e})"
            ) from e
        try:
            reply = RpcReply[Any].model_validate_json(msg.data)
        except ValidationError as e:
            raise RegistryError(f"unreadable reply to {op}: {e}") from e
        if not reply.ok or reply.error is not None:
            error = reply.error
            code = error.code if error is not None else "registry_error"
            message = error.message if error is not None else f"{op} failed"
            retryable = error.retryable if error is not None else False
            kind = RegistryUnavailable if retryable else _ERRORS.get(code, RegistryError)
            raise kind(message, code=code, retryable=retryable)
        return data.validate_python(reply.data)
