"""Unit tests of LMClient against a scripted fake transport: retries and back-off, error
codes, caching, usage and cost accounting."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest

from dspex_kernel.cache import InMemoryLRUCache
from dspex_kernel.errors import (
    LMAuthError,
    LMBadRequestError,
    LMError,
    LMRateLimitError,
    LMTimeoutError,
    LMUnavailableError,
)
from dspex_kernel.lm import (
    ZERO_USAGE,
    Endpoint,
    LMCall,
    LMClient,
    LMRequest,
    LMResponse,
    RawCompletion,
    Usage,
)

pytestmark = pytest.mark.unit

MODEL = "openai/sim-base"
RAW = RawCompletion(
    "Paris", "sim-base", prompt_tokens=12, completion_tokens=3, finish_reason="stop"
)


def request(content: str = "capital of France?", **kwargs: object) -> LMRequest:
    return LMRequest(MODEL, [{"role": "user", "content": content}], **kwargs)  # type: ignore[arg-type]


class FakeTransport:
    """Plays a script of outcomes (a completion or an exception), then repeats the last."""

    def __init__(self, *outcomes: RawCompletion | Exception) -> None:
        self.outcomes = list(outcomes) or [RAW]
        self.calls: list[tuple[LMRequest, Endpoint, float]] = []

    async def __call__(self, req: LMRequest, endpoint: Endpoint, timeout_s: float) -> RawCompletion:
        self.calls.append((req, endpoint, timeout_s))
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        await asyncio.sleep(0)  # a real transport yields to the loop
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class RecordingSleep:
    """Records the waits the client asks for instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class CeilingRandom(random.Random):
    """Full jitter at its upper bound, so the back-off ceiling becomes observable."""

    def uniform(self, a: float, b: float) -> float:
        return b


def client(transport: FakeTransport, sleep: RecordingSleep, **kwargs: object) -> LMClient:
    return LMClient(transport=transport, sleep=sleep, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


async def test_success_builds_response_and_usage(sleep: RecordingSleep) -> None:
    transport = FakeTransport(RawCompletion("Paris", "sim-base", 12, 3, "stop", 0.002))
    lm = client(transport, sleep)
    response = await lm.complete(request())
    assert response.text == "Paris"
    assert response.model == MODEL  # the model asked for: prices, endpoints, cache use it
    assert response.finish_reason == "stop"
    assert response.cached is False
    assert response.latency_s >= 0
    assert response.usage == Usage(calls=1, prompt_tokens=12, completion_tokens=3, cost_usd=0.002)
    assert lm.usage == response.usage
    assert sleep.waits == []


async def test_rate_limit_retries_honour_retry_after(sleep: RecordingSleep) -> None:
    limited = LMRateLimitError("slow down", retry_after=0.01)
    transport = FakeTransport(limited, limited, RAW)
    lm = client(transport, sleep, backoff_base_s=0.001, max_retries=4)
    response = await lm.complete(request())
    assert response.text == "Paris"
    assert len(transport.calls) == 3
    assert len(sleep.waits) == 2
    assert all(w >= 0.01 for w in sleep.waits)
    assert lm.retries == 2
    assert lm.retries_by_code == {"lm_rate_limited": 2}


async def test_backoff_grows_exponentially_up_to_the_cap(sleep: RecordingSleep) -> None:
    transport = FakeTransport(LMUnavailableError("down"))
    lm = client(
        transport,
        sleep,
        max_retries=5,
        backoff_base_s=0.5,
        backoff_max_s=3.0,
        rng=CeilingRandom(),
    )
    with pytest.raises(LMUnavailableError):
        await lm.complete(request())
    assert sleep.waits == [0.5, 1.0, 2.0, 3.0, 3.0]


async def test_jitter_stays_within_the_ceiling(sleep: RecordingSleep) -> None:
    transport = FakeTransport(LMTimeoutError("slow"))
    lm = client(transport, sleep, max_retries=4, backoff_base_s=0.5, rng=random.Random(7))
    with pytest.raises(LMTimeoutError):
        await lm.complete(request())
    ceilings = [0.5, 1.0, 2.0, 4.0]
    assert len(sleep.waits) == 4
    assert all(0 <= w <= c for w, c in zip(sleep.waits, ceilings, strict=True))


@pytest.mark.parametrize(
    "error",
    [LMBadRequestError("bad"), LMAuthError("no key"), LMError("unknown")],
)
async def test_non_retryable_errors_raise_at_once(sleep: RecordingSleep, error: LMError) -> None:
    transport = FakeTransport(error, RAW)
    lm = client(transport, sleep)
    with pytest.raises(type(error)) as caught:
        await lm.complete(request())
    assert caught.value is error
    assert len(transport.calls) == 1
    assert sleep.waits == []
    assert lm.failed_calls == 1
    assert lm.usage == Usage()


async def test_exhausted_retries_raise_our_error_with_its_code(sleep: RecordingSleep) -> None:
    transport = FakeTransport(LMUnavailableError("502 from upstream"))
    lm = client(transport, sleep, max_retries=2, backoff_base_s=0.001)
    with pytest.raises(LMUnavailableError) as caught:
        await lm.complete(request())
    assert caught.value.code == "lm_unavailable"
    assert len(transport.calls) == 3
    assert lm.retries == 2
    assert lm.failed_calls == 1


async def test_max_retries_zero_makes_one_attempt(sleep: RecordingSleep) -> None:
    transport = FakeTransport(LMRateLimitError("429", retry_after=0.01), RAW)
    lm = client(transport, sleep, max_retries=0)
    with pytest.raises(LMRateLimitError) as caught:
        await lm.complete(request())
    assert caught.value.retry_after == 0.01
    assert len(transport.calls) == 1


async def test_retry_after_beyond_the_cap_is_left_to_the_caller(sleep: RecordingSleep) -> None:
    transport = FakeTransport(LMRateLimitError("429", retry_after=120.0), RAW)
    lm = client(transport, sleep, backoff_max_s=20.0)
    with pytest.raises(LMRateLimitError) as caught:
        await lm.complete(request())
    assert caught.value.retry_after == 120.0
    assert len(transport.calls) == 1
    assert sleep.waits == []


async def test_a_non_retryable_error_during_retries_stops_them(sleep: RecordingSleep) -> None:
    transport = FakeTransport(LMTimeoutError("slow"), LMAuthError("key revoked"), RAW)
    lm = client(transport, sleep, backoff_base_s=0.001)
    with pytest.raises(LMAuthError):
        await lm.complete(request())
    assert len(transport.calls) == 2


async def test_foreign_exceptions_become_lm_errors(sleep: RecordingSleep) -> None:
    transport = FakeTransport(RuntimeError("stub bug"))
    lm = client(transport, sleep)
    with pytest.raises(LMError) as caught:
        await lm.complete(request())
    assert type(caught.value) is LMError
    assert isinstance(caught.value.__cause__, RuntimeError)


async def test_cache_hit_skips_the_transport_and_costs_nothing(sleep: RecordingSleep) -> None:
    transport = FakeTransport(RawCompletion("Paris", "sim-base", 12, 3, "stop", 0.5))
    lm = client(transport, sleep, cache=InMemoryLRUCache())
    first = await lm.complete(request())
    second = await lm.complete(request())
    assert len(transport.calls) == 1
    assert first.cached is False
    assert second.cached is True
    assert (second.text, second.model, second.finish_reason) == ("Paris", MODEL, "stop")
    assert second.usage == Usage(calls=1, cached_calls=1, prompt_tokens=12, completion_tokens=3)
    assert lm.usage == Usage(2, 1, 24, 6, 0.5)


async def test_cache_misses_when_the_request_differs(sleep: RecordingSleep) -> None:
    transport = FakeTransport(RAW)
    lm = client(transport, sleep, cache=InMemoryLRUCache())
    await lm.complete(request(temperature=0.0))
    await lm.complete(request(temperature=1.0))
    await lm.complete(request(temperature=1.0, extra={"rollout_id": 2}))
    assert len(transport.calls) == 3


async def test_without_a_cache_every_call_reaches_the_transport(sleep: RecordingSleep) -> None:
    transport = FakeTransport(RAW)
    lm = client(transport, sleep)
    for _ in range(3):
        assert (await lm.complete(request())).cached is False
    assert len(transport.calls) == 3


async def test_failures_are_not_cached(sleep: RecordingSleep) -> None:
    transport = FakeTransport(LMBadRequestError("bad"), RAW)
    lm = client(transport, sleep, cache=InMemoryLRUCache())
    with pytest.raises(LMBadRequestError):
        await lm.complete(request())
    assert (await lm.complete(request())).cached is False
    assert (await lm.complete(request())).cached is True
    assert len(transport.calls) == 2


class BrokenCache(InMemoryLRUCache):
    async def get(self, key: str) -> LMResponse | None:
        raise ConnectionError("store down")

    async def put(self, key: str, response: LMResponse) -> None:
        raise ConnectionError("store down")


async def test_a_failing_cache_degrades_to_misses(sleep: RecordingSleep) -> None:
    transport = FakeTransport(RAW)
    lm = client(transport, sleep, cache=BrokenCache())
    response = await lm.complete(request())
    assert response.text == "Paris"
    assert lm.cache_errors == 2


async def test_endpoints_per_model_override_the_default(sleep: RecordingSleep) -> None:
    transport = FakeTransport(RAW)
    default = Endpoint(api_base="http://default/v1", api_key="k0")
    special = Endpoint(api_base="http://special/v1", api_key="k1")
    lm = client(
        transport, sleep, endpoint=default, endpoints={"openai/special": special}, timeout_s=7.5
    )
    await lm.complete(request())
    await lm.complete(LMRequest("openai/special", [{"role": "user", "content": "hi"}]))
    assert [(endpoint, timeout) for _, endpoint, timeout in transport.calls] == [
        (default, 7.5),
        (special, 7.5),
    ]


def test_endpoint_repr_hides_the_key() -> None:
    endpoint = Endpoint(api_base="http://x/v1", api_key="sk-very-secret")
    for text in (repr(endpoint), str(endpoint), f"{endpoint}", repr([endpoint])):
        assert "sk-very-secret" not in text
        assert "http://x/v1" in text
    assert "api_key=None" in repr(Endpoint())


@pytest.mark.parametrize(
    ("transport_cost", "prices", "expected"),
    [
        (0.0, {MODEL: (1.0, 2.0)}, (1000 * 1.0 + 500 * 2.0) / 1_000_000),
        (0.25, {MODEL: (1.0, 2.0)}, 0.25),  # the provider's own price wins
        (0.0, {"openai/other": (1.0, 2.0)}, 0.0),
        (0.0, None, 0.0),
    ],
)
async def test_prices_apply_when_the_transport_reports_no_cost(
    sleep: RecordingSleep,
    transport_cost: float,
    prices: dict[str, tuple[float, float]] | None,
    expected: float,
) -> None:
    transport = FakeTransport(RawCompletion("x", "m", 1000, 500, "stop", transport_cost))
    lm = client(transport, sleep, prices=prices)
    response = await lm.complete(request())
    assert response.usage.cost_usd == pytest.approx(expected)
    assert lm.usage.cost_usd == pytest.approx(expected)


async def test_usage_totals_add_up_under_concurrency(sleep: RecordingSleep) -> None:
    outcomes: Sequence[RawCompletion] = [
        RawCompletion(f"a{i}", "m", prompt_tokens=i, completion_tokens=2 * i, cost_usd=0.001 * i)
        for i in range(1, 41)
    ]
    transport = FakeTransport(*outcomes)
    lm = client(transport, sleep, cache=InMemoryLRUCache())
    responses = await asyncio.gather(*(lm.complete(request(f"q{i}")) for i in range(40)))
    repeats = await asyncio.gather(*(lm.complete(request(f"q{i}")) for i in range(10)))
    total = Usage()
    for r in (*responses, *repeats):
        total = total + r.usage
    assert lm.usage.calls == total.calls == 50
    assert lm.usage.cached_calls == total.cached_calls == 10
    assert lm.usage.prompt_tokens == total.prompt_tokens
    assert lm.usage.completion_tokens == total.completion_tokens
    assert lm.usage.cost_usd == pytest.approx(total.cost_usd)
    assert lm.usage.cost_usd == pytest.approx(sum(0.001 * i for i in range(1, 41)))


@pytest.mark.parametrize(
    "kwargs",
    [{"max_retries": -1}, {"backoff_base_s": -0.1}, {"backoff_max_s": -1.0}, {"timeout_s": 0}],
)
def test_invalid_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        LMClient(transport=FakeTransport(RAW), **kwargs)  # type: ignore[arg-type]


async def test_observers_hear_of_every_call_once(sleep: RecordingSleep) -> None:
    heard: list[LMCall] = []
    transport = FakeTransport(
        RawCompletion("Paris", "sim-base", 12, 3, "stop", 0.5),
        LMRateLimitError("slow down"),
        RAW,
        LMBadRequestError("bad"),
    )
    lm = client(transport, sleep, cache=InMemoryLRUCache(), observers=[heard.append])
    await lm.complete(request())
    await lm.complete(request())  # a hit
    await lm.complete(request("retried once"))
    with pytest.raises(LMBadRequestError):
        await lm.complete(request("refused"))
    assert [(c.model, c.cache_hit, c.error_code) for c in heard] == [
        (MODEL, False, None),
        (MODEL, True, None),
        (MODEL, False, None),
        (MODEL, False, "lm_bad_request"),
    ]
    assert heard[0].usage == Usage(1, 0, 12, 3, 0.5)
    assert heard[1].usage == Usage(1, 1, 12, 3, 0.0)
    assert heard[3].usage == ZERO_USAGE
    assert all(c.latency_s >= 0 for c in heard)


async def test_without_a_cache_observers_see_no_cache_lookup(sleep: RecordingSleep) -> None:
    heard: list[LMCall] = []
    lm = client(FakeTransport(RAW), sleep)
    lm.add_observer(heard.append)
    await lm.complete(request())
    assert heard == [LMCall(MODEL, heard[0].latency_s, Usage(1, 0, 12, 3, 0.0), None, None)]


async def test_a_failing_observer_does_not_fail_the_call(sleep: RecordingSleep) -> None:
    def broken(call: LMCall) -> None:
        raise RuntimeError("observer bug")

    heard: list[LMCall] = []
    lm = client(FakeTransport(RAW), sleep, observers=[broken, heard.append])
    assert (await lm.complete(request())).text == "Paris"
    assert len(heard) == 1
