"""Composition root of the kernel service: settings → runtime, program store, LM client,
subscribers. No work happens at import time; connections open in the app's lifespan."""

from __future__ import annotations

import time

from faststream.asgi import AsgiFastStream
from opentelemetry.sdk.trace import TracerProvider

from dspex_contracts import ExecuteCompleted, ExecuteFailed, ExecuteRequested, subjects
from dspex_kernel import LM, DSPExError, Runtime
from dspex_runtime.errors import DeadLetter
from dspex_runtime.lm_metrics import LMMetrics
from dspex_runtime.lm_tracing import LMTracing
from dspex_runtime.programs import (
    DirectoryProgramStore,
    ProgramStore,
    RegistryProgramStore,
    UnknownProgram,
)
from dspex_runtime.service import Delivery, ServiceRuntime

from . import handlers
from .adapters.lm import build_runtime
from .metrics import UNRESOLVED, ExecutionMetrics
from .settings import KernelSettings


def create_app(
    settings: KernelSettings | None = None,
    *,
    programs: ProgramStore | None = None,
    lm: LM | None = None,
    tracer_provider: TracerProvider | None = None,
) -> tuple[ServiceRuntime, AsgiFastStream]:
    """Build the kernel service. ``programs``, ``lm`` and ``tracer_provider`` replace the
    configured ones (tests inject fakes, a stub transport or an in-memory exporter)."""
    settings = settings or KernelSettings()
    service = ServiceRuntime(settings, tracer_provider=tracer_provider)
    # Without a folder of specs, programs come from the registry service.
    registry: RegistryProgramStore | None = None
    if programs is None:
        if settings.programs_dir:
            programs = DirectoryProgramStore(settings.programs_dir)
        else:
            programs = registry = RegistryProgramStore()
    state: dict[str, Runtime] = {}
    store = programs
    executions = ExecutionMetrics(service.registry)
    lm_metrics = LMMetrics(service.registry, settings.service_name)
    lm_tracing = LMTracing(service.tracer_provider)

    async def start_lm() -> None:
        js = service.broker.config.connection_state.stream
        observers = [lm_metrics.observe, lm_tracing.observe]
        state["runtime"] = await build_runtime(settings, js, lm, observers=observers)

    async def execute(
        event: ExecuteRequested, *, retry_transient: bool
    ) -> ExecuteCompleted | ExecuteFailed:
        started = time.perf_counter()
        program, outcome = UNRESOLVED, "failed"
        try:
            answer = await handlers.execute_request(
                event, programs=store, runtime=state["runtime"], retry_transient=retry_transient
            )
        except DSPExError as e:  # UnknownProgram included: failed
            outcome = "retried" if e.retryable and retry_transient else "failed"
            raise
        else:
            if answer.payload.program is not None:
                program = answer.payload.program.name
            outcome = "completed" if isinstance(answer, ExecuteCompleted) else "failed"
            return answer
        finally:
            executions.executed(program, outcome, time.perf_counter() - started)

    async def start_registry() -> None:
        if registry is not None:
            await registry.start(service.broker.config.connection_state.connection)

    async def stop_registry() -> None:
        if registry is not None:
            await registry.close()

    @service.consumer(ExecuteRequested, durable=settings.durable)
    async def on_execute(event: ExecuteRequested, delivery: Delivery) -> None:
        last = delivery.deliveries >= settings.max_deliver
        try:
            answer = await execute(event, retry_transient=not last)
        except UnknownProgram as e:
            await service.publish(handlers.failed(event, e))
            raise DeadLetter("unknown_program", e.message) from e
        await service.publish(answer)

    @service.responder(ExecuteRequested, subject=subjects.EXEC_CALL, queue=settings.durable)
    async def on_call(event: ExecuteRequested) -> ExecuteCompleted | ExecuteFailed:
        try:
            return await execute(event, retry_transient=False)
        except UnknownProgram as e:
            return handlers.failed(event, e)

    return service, service.asgi_app(
        on_startup=[start_lm, start_registry], on_shutdown=[stop_registry]
    )
