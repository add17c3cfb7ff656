"""The kernel's business rules as plain functions: resolve the program, execute it, and
say what happened as a contract event. No broker here; the app wires these to subjects."""

from __future__ import annotations

import hashlib

from dspex_contracts import (
    ErrorInfo,
    ExecuteCompleted,
    ExecuteCompletedPayload,
    ExecuteFailed,
    ExecuteFailedPayload,
    ExecuteRequested,
    ProgramRef,
    UsageInfo,
)
from dspex_kernel import DSPExError, ProgramSpec, Runtime, execute
from dspex_runtime.programs import ProgramStore, UnknownProgram


async def resolve_program(event: ExecuteRequested, programs: ProgramStore) -> ProgramSpec:
    """The spec to run: a registered one by reference, or the inline one."""
    return await programs.resolve(event.payload.program)


async def execute_request(
    event: ExecuteRequested,
    *,
    programs: ProgramStore,
    runtime: Runtime,
    retry_transient: bool = True,
) -> ExecuteCompleted | ExecuteFailed:
    """Run the requested program. Errors of the request or the program become an
    ExecuteFailed; a transient LM error is raised for redelivery while ``retry_transient``
    (the last delivery answers ExecuteFailed instead, so the caller is never left waiting).
    An unknown program raises ``UnknownProgram``."""
    payload = event.payload
    ref: ProgramRef | None = None
    try:
        spec = await resolve_program(event, programs)
        ref = ProgramRef(name=spec.name, version=spec.version)
        result = await execute(spec, payload.inputs, payload.overrides, runtime=runtime)
    except UnknownProgram:
        raise
    except DSPExError as e:
        if e.retryable and retry_transient:
            raise
        return failed(event, e, ref)
    usage = result.usage
    return ExecuteCompleted.create(
        ExecuteCompletedPayload(
            request_id=event.id,
            program=ref,
            outputs=result.outputs,
            usage=UsageInfo(
                calls=usage.calls,
                cached_calls=usage.cached_calls,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cost_usd=usage.cost_usd,
            ),
            latency_s=result.latency_s,
            trace=[t.to_dict() for t in result.trace] if payload.want_trace else None,
        ),
        id=answer_id(event, "completed"),
        causation=event,
    )


def failed(
    event: ExecuteRequested, error: DSPExError, ref: ProgramRef | None = None
) -> ExecuteFailed:
    return ExecuteFailed.create(
        ExecuteFailedPayload(
            request_id=event.id,
            program=ref,
            error=ErrorInfo(
                code=error.code, message=error.message[:4000], retryable=error.retryable
            ),
        ),
        id=answer_id(event, "failed"),
        causation=event,
    )


def answer_id(event: ExecuteRequested, kind: str) -> str:
    """A deterministic id for the answer to ``event``: a redelivered request publishes the
    same id again, and JetStream stores it once."""
    digest = hashlib.sha256(f"{event.id}\x00{kind}".encode()).hexdigest()[:32]
    return f"{kind}-{digest}"
