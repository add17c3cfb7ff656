"""The :class:`~dspex_optimizer.ports.RunStore` of a replica: run logs and scores in the KV
bucket ``dspex_run_log``, commands in ``dspex_run_control``, shared by every replica."""

from __future__ import annotations

from typing import Any

from nats.js.kv import KeyValue

from dspex_kernel.optimize import CallLog

from ..ports import ControlCommand, ControlState, RunControl, RunStore
from .control import KVRunControl, write_command
from .run_log import KVCallLog, claim_run, max_value_bytes, open_bucket
from .scores import KVScoredResults, scored_key

__all__ = ["KVRunStore"]


class KVRunStore(RunStore):
    def __init__(self, log_kv: KeyValue, control_kv: KeyValue, *, max_value: int) -> None:
        self._log_kv = log_kv
        self._control_kv = control_kv
        self._max_value = max_value

    @classmethod
    async def open(
        cls,
        nc: Any,
        *,
        log_bucket: str,
        control_bucket: str,
        ttl_s: float,
        max_value: int | None = None,
    ) -> KVRunStore:
        """Create or bind both buckets on the connection ``nc``. Records larger than
        ``max_value`` bytes (default: what one NATS message carries) are chunked."""
        js = nc.jetstream()
        log_kv = await open_bucket(js, log_bucket, ttl_s=ttl_s, description="DSPEx run logs")
        control_kv = await open_bucket(
            js, control_bucket, ttl_s=ttl_s, description="DSPEx run commands"
        )
        return cls(log_kv, control_kv, max_value=max_value or max_value_bytes(nc))

    def log(self, run_id: str) -> CallLog:
        return KVCallLog(self._log_kv, run_id, max_value_bytes=self._max_value)

    async def claim(self, run_id: str, request_id: str) -> bool:
        return await claim_run(self._log_kv, run_id, request_id)

    async def scores(self, run_id: str) -> KVScoredResults:
        results = KVScoredResults(self._log_kv, run_id)
        await results.start()
        return results

    async def control(self, run_id: str) -> RunControl:
        control = KVRunControl(self._control_kv, run_id)
        await control.start()
        return control

    async def record_scored(self, run_id: str, call: int, batch: int, scored: bytes) -> None:
        await self._log_kv.put(scored_key(run_id, call, batch), scored)

    async def command(self, run_id: str, command: ControlCommand) -> ControlState:
        return await write_command(self._control_kv, run_id, command)
