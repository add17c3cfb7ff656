"""The SDK's programs: register one (and wait for the registry's answer), read versions
from the registry, and publish raw events validated against the contract."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from nats.aio.msg import Msg
from pydantic import ValidationError

from dspex_contracts import (
    Envelope,
    ProgramRegistered,
    ProgramRegisteredPayload,
    ProgramUpdated,
    subjects,
)
from dspex_contracts.rpc import ProgramInfo, ProgramSummary
from dspex_kernel import ProgramSpec

from . import bus
from ._base import ClientBase, as_spec, registry_errors
from .errors import RemoteError, RequestTimeout
from .events import build_event


class ProgramsMixin(ClientBase):
    async def register_program(
        self,
        spec: ProgramSpec | Mapping[str, Any],
        *,
        source: str | None = None,
        registered_by: str | None = None,
        timeout_s: float | None = None,
    ) -> tuple[str, int]:
        """Publish ProgramRegistered and wait for the registry's ProgramUpdated that answers
        it; returns ``(name, version)``."""
        program = as_spec(spec)
        event = ProgramRegistered.create(
            ProgramRegisteredPayload(
                spec=program.to_data(), source=source, registered_by=registered_by
            )
        )
        answered: asyncio.Future[ProgramUpdated] = asyncio.get_running_loop().create_future()

        async def on_updated(msg: Msg) -> None:
            try:
                update = ProgramUpdated.model_validate_json(msg.data)
            except ValidationError:
                return
            if update.causation_id == event.id and not answered.done():
                answered.set_result(update)

        async def on_dead_letter(msg: Msg) -> None:
            # A registration the registry refuses is dead-lettered: say why at once.
            dead = bus.dead_letter(msg.data)
            if dead is not None and dead.payload.original_id == event.id and not answered.done():
                p = dead.payload
                answered.set_exception(
                    RemoteError(f"the registry refused the program: {p.message}", code=p.reason)
                )

        subs = [
            await self.nc.subscribe(subjects.PROGRAM_UPDATED, cb=on_updated),
            await self.nc.subscribe(subjects.DEAD_LETTER, cb=on_dead_letter),
        ]
        try:
            await bus.publish_event(self.js, event)
            wait = timeout_s or self.request_timeout_s
            try:
                update = await asyncio.wait_for(answered, wait)
            except TimeoutError:
                raise RequestTimeout(
                    f"the registry did not confirm program {program.name!r} within {wait} s"
                ) from None
        finally:
            for sub in subs:
                await sub.unsubscribe()
        return update.payload.name, update.payload.version

    async def get_program(self, name: str, version: int | None = None) -> ProgramInfo:
        """One version of a registered program (its latest when ``version`` is None)."""
        async with registry_errors():
            return await self.registry.get_program_info(name, version)

    async def get_spec(self, name: str, version: int | None = None) -> ProgramSpec:
        """The ProgramSpec of a registered version."""
        return as_spec((await self.get_program(name, version)).spec)

    async def list_programs(self) -> list[ProgramSummary]:
        async with registry_errors():
            return await self.registry.list_programs()

    async def program_versions(self, name: str) -> list[ProgramInfo]:
        async with registry_errors():
            return await self.registry.program_versions(name)

    async def publish_event(self, subject: str, data: Mapping[str, Any]) -> Envelope[Any]:
        """Validate ``data`` (a whole envelope, or just its payload) against the event the
        contract serves on ``subject``, then publish it; returns the published envelope."""
        event = build_event(subject, data)
        await bus.publish_event(self.js, event)
        return event
