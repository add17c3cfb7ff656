"""The request/reply edge of the registry's reads: one core-NATS subscriber per operation in
a queue group shared by the replicas. A request is decoded, its query run, and the reply is
``{"ok": true, "data": ...}`` or ``{"ok": false, "error": {...}}`` — always a reply."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, cast

from faststream.nats import NatsMessage
from pydantic import BaseModel, SkipValidation, ValidationError

from dspex_contracts import REGISTRY_OPS, RpcError, RpcReply, registry_subject
from dspex_kernel import DSPExError
from dspex_runtime.broker import raw_body
from dspex_runtime.service import ServiceRuntime

from ..domain import RegistryStore
from ..queries import QUERIES, Query

_log = logging.getLogger(__name__)


def serve_queries(
    service: ServiceRuntime, store: Callable[[], RegistryStore], *, queue: str
) -> None:
    """Answer every registry operation on its subject; ``store`` gives the open store."""
    for op, (request_model, _) in REGISTRY_OPS.items():
        _serve(service, registry_subject(op), request_model, QUERIES[op], store, queue)


def _serve(
    service: ServiceRuntime,
    subject: str,
    model: type[BaseModel],
    query: Query,
    store: Callable[[], RegistryStore],
    queue: str,
) -> None:
    async def entry(body: bytes, msg: NatsMessage) -> bytes:
        started = time.perf_counter()
        reply, outcome = await answer(model, query, store(), msg.body)
        service.metrics.count(subject, outcome)
        service.metrics.observe(subject, time.perf_counter() - started)
        return reply

    # The AsyncAPI document shows the request model; the entry itself takes raw bytes.
    entry.__annotations__ = {
        "body": cast(Any, SkipValidation)[model],
        "msg": NatsMessage,
        "return": bytes,
    }
    entry.__doc__ = model.__doc__
    service.broker.subscriber(
        subject,
        queue=queue,
        decoder=raw_body,
        max_workers=service.settings.concurrency,
        title=f"{subject}:{queue}",
    )(entry)


async def answer(
    model: type[BaseModel], query: Query, store: RegistryStore, raw: bytes
) -> tuple[bytes, str]:
    """The reply to ``raw`` and the outcome to count (ok, dead_lettered, failed)."""
    try:
        request = model.model_validate_json(raw or b"{}")
    except ValidationError as e:
        message = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'request'}: {err['msg']}"
            for err in e.errors(include_url=False, include_input=False)
        )
        return _error("invalid_request", message[:4000]), "dead_lettered"
    try:
        data = await query(store, request)
    except DSPExError as e:
        return _error(e.code, e.message, retryable=e.retryable), "ok"
    except Exception as e:
        _log.exception("registry query %s failed", model.__name__)
        return _error("internal_error", f"{type(e).__name__}: {e}"[:4000], retryable=True), "failed"
    return RpcReply[Any](ok=True, data=data).model_dump_json().encode(), "ok"


def _error(code: str, message: str, *, retryable: bool = False) -> bytes:
    reply = RpcReply[Any](ok=False, error=RpcError(code=code, message=message, retryable=retryable))
    return reply.model_dump_json(exclude_none=True).encode()
