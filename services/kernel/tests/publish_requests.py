"""A separate client process, as another system would be: publishes N ExecuteRequested
events for the registered example program with plain nats-py, then exits.

    python publish_requests.py NATS_URL COUNT
"""

from __future__ import annotations

import asyncio
import sys

import nats

from dspex_contracts import (
    ExecuteRequested,
    ExecuteRequestedPayload,
    ProgramRef,
    ProgramSource,
    subjects,
)


async def main(url: str, count: int) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    source = ProgramSource(ref=ProgramRef(name="math_qa"))
    acks = []
    for i in range(count):
        event = ExecuteRequested.create(
            ExecuteRequestedPayload(program=source, inputs={"question": f"What is {i} plus 1?"}),
            id=f"load-{i}",
        )
        acks.append(
            js.publish(
                subjects.EXEC_REQUESTED,
                event.model_dump_json().encode(),
                headers={"Nats-Msg-Id": event.id},
            )
        )
        if len(acks) == 100:
            await asyncio.gather(*acks)
            acks.clear()
    await asyncio.gather(*acks)
    await nc.close()
    print(f"published {count}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
