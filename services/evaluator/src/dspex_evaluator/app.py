"""Composition root of the evaluator service: settings → runtime, program resolver, datasets,
metrics, LM client, the CandidateProposed consumer. No work happens at import time;
connections open in the app's lifespan."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faststream.asgi import AsgiFastStream
from nats.js import JetStreamContext
from opentelemetry.sdk.trace import TracerProvider

from dspex_contracts import CandidateProposed, DatasetRef, LMSettings
from dspex_kernel import LM, DSPExError, Metric, Runtime
from dspex_runtime import datasets
from dspex_runtime.errors import DeadLetter
from dspex_runtime.holding import heartbeats
from dspex_runtime.lm_metrics import LMMetrics
from dspex_runtime.lm_settings import build_lm_client, resolve_metric
from dspex_runtime.lm_tracing import LMTracing
from dspex_runtime.programs import ProgramStore, RegistryProgramStore
from dspex_runtime.registry_client import RegistryClient
from dspex_runtime.service import Delivery, ServiceRuntime

from . import handlers
from .adapters.lm import BoundedLM
from .metrics import EvaluatorMetrics
from .settings import EvaluatorSettings


class InternalError(DSPExError):
    code = "internal_error"


def create_app(
    settings: EvaluatorSettings | None = None,
    *,
    programs: ProgramStore | None = None,
    lm: LM | None = None,
    tracer_provider: TracerProvider | None = None,
) -> tuple[ServiceRuntime, AsgiFastStream]:
    """Build the evaluator service. ``programs``, ``lm`` and ``tracer_provider`` replace the
    configured ones (tests inject an in-memory resolver, a stub LM or an exporter); by
    default programs by reference come from the registry."""
    settings = settings or EvaluatorSettings()
    service = ServiceRuntime(settings, tracer_provider=tracer_provider)
    metrics = EvaluatorMetrics(service.registry)
    lm_metrics = LMMetrics(service.registry, settings.service_name)
    lm_tracing = LMTracing(service.tracer_provider)
    state: dict[str, handlers.Scoring] = {}
    registry_clients: list[RegistryClient] = []  # the default resolver's, once connected

    async def start() -> None:
        nc = service.broker.config.connection_state.connection
        js = service.broker.config.connection_state.stream
        observers = [lm_metrics.observe, lm_tracing.observe]
        configured = lm or await build_lm_client(settings, js, observers=observers)
        client = BoundedLM(configured, settings.example_concurrency)
        resolver = programs
        if resolver is None:
            registry_client = RegistryClient(nc)
            await registry_client.start()  # hears ProgramUpdated from now on
            registry_clients.append(registry_client)
            resolver = RegistryProgramStore(registry_client)
        state["scoring"] = handlers.Scoring(
            programs=resolver,
            load_dataset=lambda ref: _load(js, ref),
            metric=_metrics(settings),
            runtime_for=lambda lm_settings: _runtime(client, lm_settings, settings),
            example_concurrency=settings.example_concurrency,
        )

    @service.consumer(CandidateProposed, durable=settings.durable, max_workers=settings.concurrency)
    async def on_proposed(event: CandidateProposed, delivery: Delivery) -> None:
        last = delivery.deliveries >= settings.max_deliver
        # Not redelivered to another replica while this one still scores it.
        async with heartbeats(delivery, every_s=settings.ack_wait_s / 3):
            try:
                answer = await handlers.score_proposal(
                    event, state["scoring"], retry_transient=not last
                )
            except Exception as e:
                if last:
                    # The optimizer must hear back even when this message is given up on.
                    error = InternalError(f"{type(e).__name__}: {e}")
                    answer = handlers.failed(event, error)
                    await service.publish(answer)
                    metrics.answered(answer)
                else:
                    metrics.retried()
                raise
        await service.publish(answer)
        metrics.answered(answer)
        reason = handlers.dead_letter_reason(answer)
        if reason is not None:
            assert answer.payload.error is not None
            raise DeadLetter(reason, answer.payload.error.message)

    async def stop() -> None:
        for registry_client in registry_clients:
            await registry_client.close()

    return service, service.asgi_app(on_startup=[start], on_shutdown=[stop])


async def _load(js: JetStreamContext, ref: DatasetRef) -> list[dict[str, Any]]:
    return await datasets.load_dataset(js, ref)


def _metrics(settings: EvaluatorSettings) -> Callable[[str], Metric]:
    def metric(name: str) -> Metric:
        return resolve_metric(name, settings)

    return metric


def _runtime(client: LM, lm: LMSettings, settings: EvaluatorSettings) -> Runtime:
    # The event's model is the default of stages whose configuration names none.
    return Runtime(client, model=lm.model or settings.lm_model)
