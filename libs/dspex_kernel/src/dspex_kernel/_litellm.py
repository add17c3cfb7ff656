"""The only module that imports litellm: the default transport of the LM client, which makes
one provider call and translates litellm's results and exceptions into ours."""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from .errors import (
    LMAuthError,
    LMBadRequestError,
    LMError,
    LMRateLimitError,
    LMTimeoutError,
    LMUnavailableError,
)
from .lm import Endpoint, LMRequest, RawCompletion

_litellm: Any = None
_load_lock = threading.Lock()
_prices: dict[str, tuple[float, float]] = {}

# Kept short: exception texts end up in events and logs.
_MAX_MESSAGE_CHARS = 500


def load_litellm() -> Any:
    """Import litellm and set our defaults, once. Costs seconds of CPU and ~190 MiB, so it
    runs in a worker thread: on the first call (see :func:`litellm_completion`), or before
    it through :meth:`LMClient.prepare`, as the services do at start-up."""
    global _litellm
    with _load_lock:
        if _litellm is None:
            # Without this, importing litellm downloads its price map over the network.
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            import litellm

            litellm.suppress_debug_info = True
            litellm.telemetry = False
            # Unsupported parameters are dropped rather than failing the call.
            litellm.drop_params = True
            # Caching is the LM client's job; a second cache would hide our accounting.
            litellm.cache = None
            _register(litellm, _prices)
            _litellm = litellm
    return _litellm


def register_prices(prices: Mapping[str, tuple[float, float]]) -> None:
    """Tell litellm the price (USD per 1M prompt and completion tokens) of models it does
    not know, so it prices their calls and finds them in its model map at once (an unknown
    model costs every call a slow search of that map). litellm's map is process-wide."""
    with _load_lock:
        _prices.update(prices)
        if _litellm is not None:
            _register(_litellm, prices)


def _register(litellm: Any, prices: Mapping[str, tuple[float, float]]) -> None:
    if not prices:
        return
    entries = {
        model: {
            "input_cost_per_token": prompt / 1_000_000,
            "output_cost_per_token": completion / 1_000_000,
            "litellm_provider": model.split("/", 1)[0] if "/" in model else "openai",
            "mode": "chat",
        }
        for model, (prompt, completion) in prices.items()
    }
    quiet = logging.getLogger("LiteLLM")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it warns that custom models lack cache-token prices
    try:
        litellm.register_model(entries)
    finally:
        quiet.setLevel(level)


async def litellm_completion(
    request: LMRequest, endpoint: Endpoint, timeout_s: float
) -> RawCompletion:
    """One ``litellm.acompletion`` call without retries (the client retries)."""
    # The import blocks for seconds; a worker thread keeps the event loop serving meanwhile.
    litellm = _litellm if _litellm is not None else await asyncio.to_thread(load_litellm)
    params: dict[str, Any] = dict(request.extra)
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.max_tokens is not None:
        params["max_tokens"] = request.max_tokens
    if request.response_format is not None:
        params["response_format"] = dict(request.response_format)
    params.update(
        model=request.model,
        # Copies: litellm may rewrite messages in place, and the request is shared.
        messages=[dict(m) for m in request.messages],
        api_base=endpoint.api_base,
        api_key=endpoint.api_key,
        # Both knobs: num_retries is litellm's, max_retries reaches the openai SDK.
        num_retries=0,
        max_retries=0,
        timeout=timeout_s,
    )
    try:
        response = await litellm.acompletion(**params)
    except Exception as e:
        raise translate_error(e, endpoint) from e
    return _to_raw(litellm, response, request.model)


def _to_raw(litellm: Any, response: Any, model: str) -> RawCompletion:
    choices = getattr(response, "choices", None)
    if not choices:
        raise LMUnavailableError(f"{model}: the provider returned no choices")
    choice = choices[0]
    message = getattr(choice, "message", None)
    usage = getattr(response, "usage", None)
    # litellm prices every response while logging it; pricing it again costs ~1 ms a call.
    cost = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
    if cost is None:
        try:
            cost = litellm.completion_cost(completion_response=response)
        except Exception:
            cost = 0.0  # litellm has no price for this model (e.g. a self-hosted one)
    return RawCompletion(
        text=getattr(message, "content", None) or "",
        model=getattr(response, "model", None) or model,
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        finish_reason=getattr(choice, "finish_reason", None),
        cost_usd=float(cost or 0.0),
    )


def translate_error(error: Exception, endpoint: Endpoint) -> LMError:
    """Our error for a litellm/openai exception; the caller raises it ``from`` the original."""
    import openai  # already loaded by litellm

    text = str(error)
    if not text.startswith("litellm."):  # litellm's own texts already name their class
        text = f"{type(error).__name__}: {text}"
    if endpoint.api_key:
        text = text.replace(endpoint.api_key, "***")
    text = text[:_MAX_MESSAGE_CHARS]
    # Order matters: APITimeoutError subclasses APIConnectionError.
    if isinstance(error, openai.APITimeoutError | TimeoutError):
        return LMTimeoutError(text)
    if isinstance(error, openai.RateLimitError):
        return LMRateLimitError(text, retry_after=retry_after_s(error))
    if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
        return LMAuthError(text)
    if isinstance(
        error, openai.BadRequestError | openai.NotFoundError | openai.UnprocessableEntityError
    ):
        return LMBadRequestError(text)
    if isinstance(error, openai.APIConnectionError | openai.InternalServerError):
        return LMUnavailableError(text)
    return _by_status(getattr(error, "status_code", None), text, error)


def _by_status(status: object, text: str, error: Exception) -> LMError:
    # litellm's ServiceUnavailable, BadGateway and APIError carry only a status code.
    if not isinstance(status, int):
        return LMError(text)
    if status == 429:
        return LMRateLimitError(text, retry_after=retry_after_s(error))
    if status == 408:
        return LMTimeoutError(text)
    if status in (401, 403):
        return LMAuthError(text)
    if status >= 500:
        return LMUnavailableError(text)
    if 400 <= status < 500:
        return LMBadRequestError(text)
    return LMError(text)


def retry_after_s(error: Exception) -> float | None:
    """Seconds to wait, from the ``Retry-After`` (or ``retry-after-ms``) header of the
    response behind ``error``; ``None`` when there is none or it cannot be read."""
    response = getattr(error, "response", None)
    for headers in (
        getattr(error, "litellm_response_headers", None),
        getattr(response, "headers", None),
        getattr(error, "headers", None),
    ):
        if isinstance(headers, Mapping) and headers:
            seconds = _parse_headers(headers)
            if seconds is not None:
                return seconds
    return None


def _parse_headers(headers: Mapping[str, Any]) -> float | None:
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" parses as naive; an HTTP date is GMT by definition
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - time.time())
