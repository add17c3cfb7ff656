"""Holding a message while a long handler runs: heartbeats while it works, none after."""

from __future__ import annotations

import asyncio

import pytest

from dspex_runtime.holding import heartbeats

pytestmark = pytest.mark.unit


async def test_heartbeats_extend_the_deadline_while_the_work_runs() -> None:
    class Message:
        beats = 0

        async def in_progress(self) -> None:
            self.beats += 1

    message = Message()
    async with heartbeats(message, every_s=0.01):
        for _ in range(200):
            if message.beats >= 2:
                break
            await asyncio.sleep(0.01)
        assert message.beats >= 2
    beats = message.beats
    await asyncio.sleep(0.05)
    assert message.beats == beats  # and they stop with the work


async def test_a_failed_heartbeat_does_not_stop_the_next_ones() -> None:
    class Flaky:
        calls = 0

        async def in_progress(self) -> None:
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError("disconnected")

    message = Flaky()
    async with heartbeats(message, every_s=0.01):
        for _ in range(200):
            if message.calls >= 3:
                break
            await asyncio.sleep(0.01)
    assert message.calls >= 3
