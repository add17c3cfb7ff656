"""The aiohttp application: OpenAI-compatible chat completions and model list, health, and the
admin endpoints; latency and fault injection happen here, answers come from the responder."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from typing import Any

from aiohttp import web

from .config import FAULT_KINDS, MODEL_SKILL, ConfigError, SimConfig
from .knowledge import KnowledgeBase
from .responder import respond
from .state import ServerState

log = logging.getLogger("dspex_simlm")
STATE = web.AppKey("dspex_simlm_state", ServerState)
FAULT_HEADER = "X-Sim-Fault"
LATENCY_HEADER = "X-Sim-Latency-Ms"
# Neither chat markers nor a JSON object: every structured-output parser must reject it.
MALFORMED_CONTENT = "Sorry, I lost track of the requested format; here is a partial reply: {"


def error_response(
    status: int,
    message: str,
    kind: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def approx_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def resolve_model(name: Any) -> str | None:
    """``sim-base`` and ``<provider>/sim-base`` both name the sim-base model."""
    short = str(name or "").rsplit("/", 1)[-1]
    return short if short in MODEL_SKILL else None


def completion_body(model: str, contents: tuple[str, ...], prompt_tokens: int) -> dict[str, Any]:
    completion_tokens = sum(approx_tokens(c) for c in contents)
    return {
        "id": f"chatcmpl-sim-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "dspex-simlm",
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": "stop",
            }
            for i, content in enumerate(contents)
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


async def stream_reply(
    request: web.Request, body: dict[str, Any], usage: bool
) -> web.StreamResponse:
    """Server-sent events: one content chunk per choice, a finish chunk, optional usage."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    base = {k: body[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    for choice in body["choices"]:
        delta = {"role": "assistant", "content": choice["message"]["content"]}
        chunks = [
            {"index": choice["index"], "delta": delta, "finish_reason": None},
            {"index": choice["index"], "delta": {}, "finish_reason": "stop"},
        ]
        for chunk in chunks:
            await response.write(f"data: {json.dumps(base | {'choices': [chunk]})}\n\n".encode())
    if usage:
        final = base | {"choices": [], "usage": body["usage"]}
        await response.write(f"data: {json.dumps(final)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    stats = state.stats
    stats.requests_total += 1
    try:
        payload = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        payload = None
    if not isinstance(payload, dict) or not isinstance(payload.get("messages"), list):
        stats.responses_by_status["400"] += 1
        return error_response(
            400, "body must be a JSON object with `messages`", "invalid_request_error"
        )
    model = resolve_model(payload.get("model"))
    if model is None:
        stats.responses_by_status["404"] += 1
        message = f"The model `{payload.get('model')}` does not exist. Known: {sorted(MODEL_SKILL)}"
        return error_response(404, message, "invalid_request_error", "model_not_found")
    forced = request.headers.get(FAULT_HEADER)
    if forced is not None and forced not in FAULT_KINDS:
        stats.responses_by_status["400"] += 1
        return error_response(
            400, f"{FAULT_HEADER} must be one of {FAULT_KINDS}", "invalid_request_error"
        )
    stats.requests_by_model[model] += 1
    stats.in_flight += 1
    stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
    try:
        return await _answer(request, state, payload, model, forced or state.draw_fault())
    finally:
        state.stats.in_flight -= 1


async def _answer(
    request: web.Request, state: ServerState, payload: dict[str, Any], model: str, fault: str | None
) -> web.StreamResponse:
    config = state.config
    latency_header = request.headers.get(LATENCY_HEADER)
    try:
        latency_s = float(latency_header) / 1000.0 if latency_header else state.draw_latency_s()
    except ValueError:
        latency_s = state.draw_latency_s()
    if latency_s > 0:
        await asyncio.sleep(latency_s)
    stats = state.stats
    if fault is not None:
        stats.faults_injected[fault] += 1
        log.debug("injecting fault %s", fault)
    if fault == "429":
        stats.responses_by_status["429"] += 1
        retry = config.retry_after_s
        headers = {"Retry-After": f"{retry:g}", "retry-after-ms": str(int(retry * 1000))}
        return error_response(
            429,
            "Rate limit reached (simulated).",
            "rate_limit_error",
            "rate_limit_exceeded",
            headers,
        )
    if fault == "500":
        stats.responses_by_status["500"] += 1
        return error_response(500, "The server had an error (simulated).", "server_error")
    if fault == "timeout":
        await asyncio.sleep(config.timeout_s)
    try:
        reply = respond(payload, model, state.knowledge)
    except (TypeError, ValueError) as exc:  # e.g. a non-numeric temperature or n
        stats.responses_by_status["400"] += 1
        return error_response(400, f"bad request: {exc}", "invalid_request_error")
    contents = (
        (MALFORMED_CONTENT,) * len(reply.contents) if fault == "malformed" else reply.contents
    )
    stats.answers["malformed" if fault == "malformed" else reply.outcome] += 1
    prompt_chars = sum(
        len(str(m.get("content") or "")) for m in payload["messages"] if isinstance(m, dict)
    )
    body = completion_body(model, contents, math.ceil(prompt_chars / 4))
    stats.prompt_tokens += body["usage"]["prompt_tokens"]
    stats.completion_tokens += body["usage"]["completion_tokens"]
    stats.responses_by_status["200"] += 1
    log.debug("%s %s p=%s", model, reply.outcome, reply.p_correct)
    if payload.get("stream"):
        options = payload.get("stream_options") or {}
        return await stream_reply(request, body, bool(options.get("include_usage")))
    return web.json_response(body)


async def list_models(request: web.Request) -> web.Response:
    data = [
        {"id": m, "object": "model", "created": 0, "owned_by": "dspex-simlm"} for m in MODEL_SKILL
    ]
    return web.json_response({"object": "list", "data": data})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "rows": len(request.app[STATE].knowledge.rows)})


async def get_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].stats.to_json())


async def reset_stats(request: web.Request) -> web.Response:
    request.app[STATE].reset_stats()
    return web.json_response({"status": "ok"})


async def get_config(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].config.public())


async def post_config(request: web.Request) -> web.Response:
    try:
        changes = await request.json()
        if not isinstance(changes, dict):
            raise ConfigError("body must be a JSON object")
        config = request.app[STATE].reconfigure(changes)
    except (ConfigError, json.JSONDecodeError) as exc:
        return error_response(400, str(exc), "invalid_request_error")
    return web.json_response(config.public())


def create_app(
    config: SimConfig | None = None, knowledge: KnowledgeBase | None = None
) -> web.Application:
    """The whole server as an aiohttp application (no sockets opened until it is run)."""
    config = config or SimConfig()
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app[STATE] = ServerState(config, knowledge or KnowledgeBase.load(config.knowledge))
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/admin/stats", get_stats)
    app.router.add_post("/admin/reset-stats", reset_stats)
    app.router.add_get("/admin/config", get_config)
    app.router.add_post("/admin/config", post_config)
    return app
