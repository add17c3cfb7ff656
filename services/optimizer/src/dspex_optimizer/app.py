"""Composition root of the optimizer service: settings → runtime, run store (NATS KV),
datasets, programs, LM, and the consumers of runs, scores and commands. No work happens at
import time; connections open in the app's lifespan."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from faststream.asgi import AsgiFastStream
from nats.aio.client import Client
from opentelemetry.sdk.trace import TracerProvider

from dspex_contracts import (
    CancelRun,
    CandidateScored,
    OptimizeRequested,
    PauseRun,
    ResumeRun,
    RunCompleted,
)
from dspex_kernel import LM
from dspex_runtime import Delivery, ServiceRuntime
from dspex_runtime.holding import HoldingConsumer
from dspex_runtime.lm_metrics import LMMetrics
from dspex_runtime.lm_settings import build_lm_client
from dspex_runtime.lm_tracing import LMTracing
from dspex_runtime.programs import ProgramStore, RegistryProgramStore
from dspex_runtime.registry_client import RegistryClient
from dspex_runtime.telemetry import continue_trace

from .adapters.datasets import DatasetStore, NatsDatasetStore
from .adapters.kv import KVRunStore
from .adapters.lm import LazyLM
from .handlers import command_of, parse_call_id
from .metrics import OptimizerMetrics
from .ports import RunStore
from .runs import RunDeps, run_optimization
from .settings import OptimizerSettings

__all__ = ["Optimizer", "create_app"]


@dataclass
class Optimizer:
    """The parts of a running replica, for tests and operators: the runtime, the run
    consumer (how many runs it holds), and the dependencies runs use once started."""

    service: ServiceRuntime
    runs: HoldingConsumer[OptimizeRequested]
    deps: RunDeps | None = None
    active: dict[str, asyncio.Task[RunCompleted]] = field(default_factory=dict)

    def ready(self) -> RunDeps:
        assert self.deps is not None, "the optimizer has not started"  # set at start-up
        return self.deps

    async def run(self, event: OptimizeRequested) -> None:
        """Run the requested optimization; a second delivery of a run this replica is
        already running (its heartbeats were late) waits for that run instead of racing it."""
        run_id = event.payload.run_id
        running = self.active.get(run_id)
        if running is not None:
            await asyncio.shield(running)
            return
        task = asyncio.create_task(run_optimization(event, self.ready()))
        self.active[run_id] = task
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise
        finally:
            if task.done():
                self.active.pop(run_id, None)


def create_app(
    settings: OptimizerSettings | None = None,
    *,
    store: RunStore | None = None,
    programs: ProgramStore | None = None,
    datasets: DatasetStore | None = None,
    lm: LM | None = None,
    tracer_provider: TracerProvider | None = None,
) -> tuple[Optimizer, AsgiFastStream]:
    """Build the optimizer service. ``store``, ``programs``, ``datasets``, ``lm`` and
    ``tracer_provider`` replace the configured ones (tests inject fakes)."""
    settings = settings or OptimizerSettings()
    service = ServiceRuntime(settings, tracer_provider=tracer_provider)
    metrics = OptimizerMetrics(service.registry)
    lm_metrics = LMMetrics(service.registry, settings.service_name)
    lm_tracing = LMTracing(service.tracer_provider)

    async def build_lm() -> LM:
        js = service.broker.config.connection_state.stream
        observers = [lm_metrics.observe, lm_tracing.observe]
        return await build_lm_client(settings, js, observers=observers)

    async def start() -> None:
        nc = service.broker.config.connection_state.connection
        js = service.broker.config.connection_state.stream
        run_store = store or await KVRunStore.open(
            nc,
            log_bucket=settings.run_log_bucket,
            control_bucket=settings.run_control_bucket,
            ttl_s=settings.run_log_ttl_s,
        )
        optimizer.deps = RunDeps(
            settings=settings,
            publish=service.publish,
            programs=programs or _registry_programs(nc, settings),
            datasets=datasets or NatsDatasetStore(js),
            store=run_store,
            lm=lm or LazyLM(build_lm),
            metrics=metrics,
        )

    async def on_run(event: OptimizeRequested, delivery: Delivery) -> None:
        # One span for the run, in the requester's trace: the proposals it publishes, their
        # evaluations and the evaluations' LM calls follow it (a replay after a crash
        # joins the same trace, since the redelivered message carries the same context).
        attrs = {"dspex.run_id": event.payload.run_id, "dspex.strategy": event.payload.strategy}
        with continue_trace(
            "dspex.optimize.run",
            delivery.headers,
            tracer_provider=service.tracer_provider,
            attributes=attrs,
        ):
            await optimizer.run(event)

    runs = HoldingConsumer(
        service, OptimizeRequested, on_run, durable=settings.durable, slots=settings.max_runs
    )
    optimizer = Optimizer(service, runs)

    @service.consumer(CandidateScored, durable=f"{settings.durable}-scores")
    async def on_scored(event: CandidateScored, delivery: Delivery) -> None:
        payload = event.payload
        where = parse_call_id(payload.run_id, payload.call_id)
        if where is not None:  # a call id another producer made up is not ours to record
            await optimizer.ready().store.record_scored(
                payload.run_id, *where, payload.model_dump_json().encode()
            )

    async def on_command(event: PauseRun | ResumeRun | CancelRun, delivery: Delivery) -> None:
        await optimizer.ready().store.command(event.payload.run_id, command_of(event))

    # One durable per command subject; the store orders commands by time, not arrival.
    service.consumer(PauseRun, durable=f"{settings.durable}-pause")(on_command)
    service.consumer(ResumeRun, durable=f"{settings.durable}-resume")(on_command)
    service.consumer(CancelRun, durable=f"{settings.durable}-cancel")(on_command)

    app = service.asgi_app(on_startup=[start])
    app.after_startup(runs.start)
    app.on_shutdown(runs.stop)
    return optimizer, app


def _registry_programs(nc: Client, settings: OptimizerSettings) -> ProgramStore:
    return RegistryProgramStore(RegistryClient(nc, timeout_s=settings.registry_timeout_s))
