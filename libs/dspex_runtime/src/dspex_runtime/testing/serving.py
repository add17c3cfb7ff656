"""A service served in-process for a test: started in a task, ready once it holds its
subscriptions and serves HTTP (what ``/readyz`` waits for too), stopped as SIGTERM would."""

from __future__ import annotations

import asyncio
import time

from faststream.asgi import AsgiFastStream

from ..service import ServiceRuntime


async def serve_started(
    service: ServiceRuntime, app: AsgiFastStream | None = None, *, timeout_s: float = 30.0
) -> asyncio.Task[None]:
    """Serve ``app`` (default: the service's own) in a task and return it once the service
    is subscribed and serving HTTP; a start-up error is raised here."""
    task = asyncio.create_task(service.serve(app))
    deadline = time.monotonic() + timeout_s
    while True:
        if task.done():
            task.result()  # the start-up error
            raise AssertionError(f"{service.settings.service_name} stopped while starting")
        server = service.http_server
        if service.subscribed.is_set() and server is not None and server.started:
            return task
        if time.monotonic() > deadline:
            task.cancel()
            raise AssertionError(f"{service.settings.service_name} did not start in {timeout_s} s")
        await asyncio.sleep(0.05)


async def stop_serving(
    service: ServiceRuntime, task: asyncio.Task[None], *, timeout_s: float = 30.0
) -> None:
    """Stop serving as SIGTERM would (drain, then shut down) and wait for the task."""
    assert service.http_server is not None
    service.http_server.should_exit = True
    await asyncio.wait_for(task, timeout_s)
