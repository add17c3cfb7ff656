"""The SDK's executions: run a program once by request/reply, or publish the request to
the kernel's durable consumer and collect the answer from the stream later."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import nats.errors
from pydantic import ValidationError

from dspex_contracts import (
    ExecuteCompleted,
    ExecuteFailed,
    ExecuteRequested,
    ExecuteRequestedPayload,
    subjects,
)

from . import bus
from ._base import ClientBase, ProgramLike, program_source
from .answers import wait_for_answer
from .errors import InvalidInput, NotConnected, RemoteError, RequestTimeout

ExecuteAnswer = ExecuteCompleted | ExecuteFailed


class ExecutionMixin(ClientBase):
    def _execute_event(
        self,
        program: ProgramLike,
        inputs: Mapping[str, Any],
        overrides: Mapping[str, Any] | None,
        version: int | None,
        want_trace: bool,
    ) -> ExecuteRequested:
        try:
            payload = ExecuteRequestedPayload(
                program=program_source(program, version),
                inputs=dict(inputs),
                overrides=dict(overrides or {}),
                want_trace=want_trace,
            )
        except ValidationError as e:
            raise InvalidInput(f"invalid execution request:\n{bus.validation_message(e)}") from e
        return ExecuteRequested.create(payload)

    async def execute(
        self,
        program: ProgramLike,
        inputs: Mapping[str, Any],
        overrides: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        want_trace: bool = False,
        timeout_s: float | None = None,
    ) -> ExecuteAnswer:
        """Run ``program`` once through a kernel replica (request/reply on
        ``dspex.rpc.exec.v1``) and return its ExecuteCompleted or ExecuteFailed."""
        event = self._execute_event(program, inputs, overrides, version, want_trace)
        wait = timeout_s or self.request_timeout_s
        try:
            msg = await self.nc.request(
                subjects.EXEC_CALL, event.model_dump_json().encode(), timeout=wait
            )
        except nats.errors.NoRespondersError as e:
            raise NotConnected(
                f"no kernel replica answers on {subjects.EXEC_CALL}: is the stack running?"
            ) from e
        except nats.errors.TimeoutError as e:
            raise RequestTimeout(f"no answer to the execution within {wait} s") from e
        return _execute_answer(msg.data)

    async def publish_execute(
        self,
        program: ProgramLike,
        inputs: Mapping[str, Any],
        overrides: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        want_trace: bool = False,
    ) -> str:
        """Publish ExecuteRequested to the kernel's durable consumer and return the request
        id; :meth:`wait_answer` collects the answer."""
        event = self._execute_event(program, inputs, overrides, version, want_trace)
        self._execute_seq[event.id] = await bus.publish_event(self.js, event)
        return event.id

    async def wait_answer(
        self, request_id: str, *, timeout_s: float | None = None
    ) -> ExecuteAnswer:
        """The ExecuteCompleted or ExecuteFailed answering ``request_id``, read from the
        DSPEX_EXEC stream (from the request onwards when this client published it)."""
        wait = timeout_s or self.request_timeout_s
        data = await wait_for_answer(
            self.js, request_id, after_seq=self._execute_seq.get(request_id), timeout_s=wait
        )
        return _execute_answer(data)


def _execute_answer(data: bytes) -> ExecuteAnswer:
    try:
        raw = json.loads(data)
    except ValueError as e:
        raise RemoteError("the kernel's answer is not JSON") from e
    kind = raw.get("type") if isinstance(raw, dict) else None
    try:
        if kind == ExecuteCompleted.TYPE:
            return ExecuteCompleted.model_validate(raw)
        if kind == ExecuteFailed.TYPE:
            return ExecuteFailed.model_validate(raw)
    except ValidationError as e:
        raise RemoteError(f"the kernel's answer is not understood: {e}") from e
    if kind == "DeadLettered":
        payload = raw.get("payload", {})
        raise RemoteError(
            f"the kernel rejected the request: {payload.get('message')}",
            code=str(payload.get("reason") or "rejected"),
        )
    raise RemoteError(f"unexpected answer of type {kind!r}")
