"""Tests of the litellm transport: exception translation (unit) and real HTTP round trips
through litellm to the simulated LM (integration)."""

from __future__ import annotations

import asyncio
import email.utils
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dspex_kernel._litellm import _to_raw, load_litellm, retry_after_s, translate_error
from dspex_kernel.cache import InMemoryLRUCache
from dspex_kernel.errors import (
    LMAuthError,
    LMBadRequestError,
    LMError,
    LMRateLimitError,
    LMTimeoutError,
    LMUnavailableError,
)
from dspex_kernel.lm import Endpoint, LMClient, LMRequest
from dspex_simlm import PRICES

unit = pytest.mark.unit
integration = pytest.mark.integration
# One event loop for the module's integration tests, as in a service: litellm keeps its
# HTTP clients and logging worker per loop.
module_loop = pytest.mark.asyncio(loop_scope="module")

SECRET = "sk-test-never-logged"
MODEL = "openai/sim-base"
RETRY_AFTER_S = 0.3


@pytest.fixture(scope="module")
def litellm() -> Any:
    return load_litellm()


def http_response(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    return httpx.Response(status, headers=headers or {}, request=request)


@unit
def test_importing_the_client_does_not_import_litellm() -> None:
    code = (
        "import sys\n"
        "from dspex_kernel.lm import LMClient\n"
        "LMClient()\n"
        "assert 'litellm' not in sys.modules, 'litellm imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@unit
@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda m: m.Timeout("t", "m", "openai"), LMTimeoutError),
        (lambda m: m.RateLimitError("r", "openai", "m"), LMRateLimitError),
        (lambda m: m.APIConnectionError("c", "openai", "m"), LMUnavailableError),
        (
            lambda m: m.InternalServerError("i", "openai", "m", response=http_response(500)),
            LMUnavailableError,
        ),
        (
            lambda m: m.ServiceUnavailableError("s", "openai", "m", response=http_response(503)),
            LMUnavailableError,
        ),
        (
            lambda m: m.BadGatewayError("b", "openai", "m", response=http_response(502)),
            LMUnavailableError,
        ),
        (lambda m: m.APIError(500, "a", "openai", "m"), LMUnavailableError),
        (lambda m: m.APIError(422, "a", "openai", "m"), LMBadRequestError),
        (lambda m: m.AuthenticationError("a", "openai", "m"), LMAuthError),
        (
            lambda m: m.PermissionDeniedError("p", "openai", "m", response=http_response(403)),
            LMAuthError,
        ),
        (lambda m: m.BadRequestError("b", "m", "openai"), LMBadRequestError),
        (lambda m: m.NotFoundError("n", "m", "openai"), LMBadRequestError),
        (lambda m: m.ContextWindowExceededError("c", "m", "openai"), LMBadRequestError),
        (lambda m: m.UnsupportedParamsError("u", "openai", "m"), LMBadRequestError),
        (lambda m: ValueError("v"), LMError),
    ],
)
def test_litellm_errors_translate_to_ours(litellm: Any, make: Any, expected: type) -> None:
    error = translate_error(make(litellm), Endpoint())
    assert type(error) is expected


@unit
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"Retry-After": "7", "retry-after-ms": "250"}, 0.25),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_from_the_response(
    litellm: Any, headers: dict[str, str], expected: float | None
) -> None:
    error = litellm.RateLimitError("r", "openai", "m", response=http_response(429, headers))
    assert retry_after_s(error) == expected
    assert translate_error(error, Endpoint()).retry_after == expected


@unit
def test_retry_after_as_an_http_date(litellm: Any) -> None:
    def limited(at: float) -> Any:
        headers = {"Retry-After": email.utils.formatdate(at, usegmt=True)}
        return litellm.RateLimitError("r", "openai", "m", response=http_response(429, headers))

    seconds = retry_after_s(limited(time.time() + 3600))
    assert seconds is not None
    assert 3500 <= seconds <= 3600  # whole-second resolution
    assert retry_after_s(limited(time.time() - 30)) == 0.0


@unit
def test_error_messages_never_carry_the_key(litellm: Any) -> None:
    error = litellm.AuthenticationError(f"Incorrect API key provided: {SECRET}", "openai", "m")
    translated = translate_error(error, Endpoint(api_key=SECRET))
    assert SECRET not in translated.message
    assert SECRET not in str(translated)


def model_response(litellm: Any, model: str, choices: list[dict[str, Any]]) -> Any:
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
    return litellm.ModelResponse(model=model, choices=choices, usage=usage)


ANSWER = {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}


@unit
def test_litellm_prices_models_it_knows(litellm: Any) -> None:
    raw = _to_raw(litellm, model_response(litellm, "gpt-4o-mini", [ANSWER]), "openai/gpt-4o-mini")
    assert (raw.text, raw.prompt_tokens, raw.completion_tokens) == ("hi", 1000, 100)
    assert raw.finish_reason == "stop"
    assert raw.cost_usd > 0


@unit
def test_unknown_models_cost_nothing_instead_of_failing(litellm: Any) -> None:
    raw = _to_raw(litellm, model_response(litellm, "sim-base", [ANSWER]), "openai/sim-base")
    assert raw.cost_usd == 0.0
    assert raw.prompt_tokens == 1000


@unit
def test_a_reply_without_choices_is_unavailable(litellm: Any) -> None:
    with pytest.raises(LMUnavailableError, match="no choices"):
        _to_raw(litellm, model_response(litellm, "sim-base", []), "openai/sim-base")


# --- integration: real HTTP through litellm to the simulated LM --------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[Any]:
    from dspex_simlm.testing import SimLMProcess

    # A distinctive Retry-After proves it is parsed, not defaulted; a short hang keeps
    # the timeout test's abandoned request from outliving the module by long.
    with SimLMProcess(extra_args=["--retry-after-s", str(RETRY_AFTER_S), "--timeout-s", "5"]) as p:
        yield p


class RecordingSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def lm_for(sim: Any, **kwargs: Any) -> LMClient:
    return LMClient(endpoint=Endpoint(api_base=sim.api_base, api_key=SECRET), **kwargs)


def ask(question: str = "What is the capital of France?", **extra: Any) -> LMRequest:
    return LMRequest(MODEL, [{"role": "user", "content": question}], temperature=0.0, extra=extra)


def fault(kind: str) -> dict[str, Any]:
    return {"extra_headers": {"X-Sim-Fault": kind}}


async def sim_stats(sim: Any) -> dict[str, Any]:
    stats: dict[str, Any] = await asyncio.to_thread(sim.stats)
    return stats


@integration
@module_loop
async def test_round_trip_reports_text_and_usage(sim: Any) -> None:
    lm = lm_for(sim, max_retries=0)
    response = await lm.complete(ask())
    assert response.text
    assert response.model == MODEL
    assert response.finish_reason == "stop"
    assert response.usage.calls == 1
    assert response.usage.prompt_tokens > 0
    assert response.usage.completion_tokens > 0
    # litellm's price map is process-wide: another test may have registered the simulated
    # models' prices. Either way the cost must be what those prices say.
    prompt_price, completion_price = PRICES[MODEL]
    priced = (
        response.usage.prompt_tokens * prompt_price
        + response.usage.completion_tokens * completion_price
    ) / 1_000_000
    assert response.usage.cost_usd in (0.0, pytest.approx(priced))


@integration
@module_loop
async def test_prices_give_the_sim_model_a_cost(sim: Any) -> None:
    lm = lm_for(sim, prices={MODEL: (2.0, 8.0)})
    response = await lm.complete(ask("prices?"))
    usage = response.usage
    expected = (usage.prompt_tokens * 2.0 + usage.completion_tokens * 8.0) / 1_000_000
    assert usage.cost_usd == pytest.approx(expected)
    assert usage.cost_usd > 0


@integration
@module_loop
async def test_forced_429_raises_rate_limit_with_retry_after(sim: Any) -> None:
    lm = lm_for(sim, max_retries=0)
    with pytest.raises(LMRateLimitError) as caught:
        await lm.complete(ask(**fault("429")))
    assert caught.value.retry_after == pytest.approx(RETRY_AFTER_S)
    assert SECRET not in str(caught.value)


@integration
@module_loop
async def test_forced_500_raises_unavailable(sim: Any) -> None:
    lm = lm_for(sim, max_retries=0)
    with pytest.raises(LMUnavailableError):
        await lm.complete(ask(**fault("500")))


@integration
@module_loop
async def test_forced_timeout_raises_timeout(sim: Any) -> None:
    lm = lm_for(sim, max_retries=0, timeout_s=0.5)
    with pytest.raises(LMTimeoutError):
        await lm.complete(ask(**fault("timeout")))


@integration
@module_loop
async def test_unknown_model_is_a_bad_request(sim: Any) -> None:
    lm = lm_for(sim, max_retries=0)
    request = LMRequest("openai/sim-huge", [{"role": "user", "content": "hi"}])
    with pytest.raises(LMBadRequestError):
        await lm.complete(request)


@integration
@module_loop
async def test_each_retry_is_one_http_request(sim: Any) -> None:
    # Proves litellm and the openai SDK do not retry behind the client's back.
    await asyncio.to_thread(sim.reset_stats)
    sleep = RecordingSleep()
    lm = lm_for(sim, max_retries=2, sleep=sleep)
    with pytest.raises(LMRateLimitError):
        await lm.complete(ask(**fault("429")))
    stats = await sim_stats(sim)
    assert stats["requests_total"] == 3
    assert lm.retries_by_code == {"lm_rate_limited": 2}
    assert len(sleep.waits) == 2


@integration
@module_loop
async def test_a_cached_answer_skips_the_server(sim: Any) -> None:
    lm = lm_for(sim, cache=InMemoryLRUCache())
    first = await lm.complete(ask("cache me"))
    await asyncio.to_thread(sim.reset_stats)
    # Headers are transport-only: the same question with a tracing header is a hit.
    second = await lm.complete(ask("cache me", extra_headers={"X-Trace": "1"}))
    stats = await sim_stats(sim)
    assert stats["requests_total"] == 0
    assert second.cached is True
    assert second.text == first.text


@integration
@module_loop
async def test_fifty_concurrent_requests_complete(sim: Any) -> None:
    lm = lm_for(sim)
    responses = await asyncio.gather(*(lm.complete(ask(f"question {i}")) for i in range(50)))
    assert all(r.text and not r.cached for r in responses)
    assert lm.usage.calls == 50
    assert lm.usage.prompt_tokens == sum(r.usage.prompt_tokens for r in responses)
