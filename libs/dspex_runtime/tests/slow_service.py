"""A service process for the graceful-shutdown test: it handles ExecuteRequested by sleeping
``inputs["sleep"]`` seconds, then publishing ExecuteCompleted. Configured by DSPEX_* variables;
run as ``python slow_service.py``."""

from __future__ import annotations

import asyncio
import logging

from dspex_contracts import (
    ExecuteCompleted,
    ExecuteCompletedPayload,
    ExecuteRequested,
    ProgramRef,
    UsageInfo,
)
from dspex_runtime import Delivery, ServiceRuntime, ServiceSettings

log = logging.getLogger("slow_service")


def main() -> None:
    runtime = ServiceRuntime(ServiceSettings())

    @runtime.consumer(ExecuteRequested, durable="slow")
    async def on_request(event: ExecuteRequested, delivery: Delivery) -> None:
        log.info("handling started")
        await asyncio.sleep(float(event.payload.inputs["sleep"]))
        await runtime.publish(
            ExecuteCompleted.create(
                ExecuteCompletedPayload(
                    request_id=event.id,
                    program=ProgramRef(name="slow"),
                    outputs={},
                    usage=UsageInfo(),
                    latency_s=0.0,
                ),
                causation=event,
            )
        )
        log.info("handling finished")

    runtime.run()


if __name__ == "__main__":
    main()
