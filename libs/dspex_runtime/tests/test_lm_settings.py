"""The LM settings shared by services: values from ``DSPEX_LM_*``, the LM client they
build (and its cache), and metrics resolved only from built-ins or the operator's
allow-list."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import nats
import pytest
from pydantic import ValidationError

from dspex_kernel import BUILTIN_METRICS, InMemoryLRUCache
from dspex_kernel.errors import MetricError
from dspex_runtime.kv_cache import DEFAULT_BUCKET, NatsKVCache
from dspex_runtime.lm_settings import (
    LMServiceSettings,
    UnknownMetricError,
    build_lm_client,
    resolve_metric,
)
from dspex_runtime.testing.nats import NatsServer


def answer_length_metric(example: Mapping[str, Any], outputs: Mapping[str, Any]) -> float:
    """An operator's metric, allow-listed by import path in the tests below."""
    return float(len(str(outputs.get("answer", ""))) <= 3)


OWN_METRIC = f"{__name__}:answer_length_metric"


@pytest.mark.unit
def test_settings_come_from_dspex_lm_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DSPEX_LM_MODEL", "openai/gpt-4o-mini")
    monkeypatch.setenv("DSPEX_LM_API_BASE", "http://127.0.0.1:9999/v1")
    monkeypatch.setenv("DSPEX_LM_API_KEY", "sk-secret")
    monkeypatch.setenv("DSPEX_LM_MAX_RETRIES", "5")
    monkeypatch.setenv("DSPEX_LM_TIMEOUT_S", "12.5")
    monkeypatch.setenv("DSPEX_LM_CACHE", "memory")
    monkeypatch.setenv("DSPEX_LM_PRICES", '{"openai/sim-base": [0.1, 0.4]}')
    monkeypatch.setenv("DSPEX_USER_METRICS", '{"short": "my_metrics.scoring:short"}')

    settings = LMServiceSettings()

    assert settings.lm_model == "openai/gpt-4o-mini"
    assert settings.lm_api_base == "http://127.0.0.1:9999/v1"
    assert settings.lm_api_key is not None
    assert settings.lm_api_key.get_secret_value() == "sk-secret"
    assert "sk-secret" not in repr(settings)
    assert (settings.lm_max_retries, settings.lm_timeout_s) == (5, 12.5)
    assert settings.lm_cache == "memory"
    assert settings.lm_prices == {"openai/sim-base": (0.1, 0.4)}
    assert settings.user_metrics == {"short": "my_metrics.scoring:short"}


@pytest.mark.unit
def test_defaults_share_the_cache_through_nats() -> None:
    settings = LMServiceSettings()
    assert settings.lm_cache == "nats"
    assert settings.lm_model is None
    assert settings.user_metrics == {}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("metrics", "complaint"),
    [
        ({"bad name": "pkg.mod:fn"}, "letters, digits"),
        ({"exact_match": "pkg.mod:fn"}, "is a built-in metric"),
        ({"mine": "pkg.mod.fn"}, "is not 'package.module:function'"),
        ({"mine": "pkg.mod:fn; import os"}, "is not 'package.module:function'"),
    ],
)
def test_the_allow_list_is_checked_at_start(metrics: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        LMServiceSettings(user_metrics=metrics)


@pytest.mark.unit
def test_built_in_and_allow_listed_metrics_resolve() -> None:
    settings = LMServiceSettings(user_metrics={"short": OWN_METRIC})
    for name, metric in BUILTIN_METRICS.items():
        assert resolve_metric(name, settings) is metric
    short = resolve_metric("short", settings)
    assert short({"answer": 42}, {"answer": 42}) == 1.0
    assert short({"answer": 42}, {"answer": "a long answer"}) == 0.0


@pytest.mark.unit
@pytest.mark.parametrize("name", ["nonsense", OWN_METRIC, "os:system"])
def test_anything_else_is_an_unknown_metric(name: str) -> None:
    settings = LMServiceSettings(user_metrics={"short": OWN_METRIC})
    with pytest.raises(UnknownMetricError) as caught:
        resolve_metric(name, settings)
    assert caught.value.code == "unknown_metric"
    assert "short" in caught.value.message


@pytest.mark.unit
def test_an_allow_listed_metric_that_cannot_be_imported_says_so() -> None:
    settings = LMServiceSettings(user_metrics={"gone": "no_such_package.metrics:gone"})
    with pytest.raises(MetricError) as caught:
        resolve_metric("gone", settings)
    assert caught.value.code == "invalid_metric"


@pytest.mark.unit
async def test_client_caches_in_memory_or_not_at_all() -> None:
    memory = await build_lm_client(LMServiceSettings(lm_cache="memory"), None)
    assert isinstance(memory._cache, InMemoryLRUCache)
    none = await build_lm_client(LMServiceSettings(lm_cache="none", lm_max_retries=0), None)
    assert none._cache is None
    assert none._max_retries == 0
    with pytest.raises(ValueError, match="needs a NATS connection"):
        await build_lm_client(LMServiceSettings(lm_cache="nats"), None)


@pytest.mark.integration
async def test_client_shares_its_cache_through_a_nats_kv_bucket() -> None:
    async with NatsServer() as server:
        nc = await nats.connect(server.url)
        try:
            client = await build_lm_client(LMServiceSettings(lm_cache="nats"), nc)
            assert isinstance(client._cache, NatsKVCache)
            await nc.jetstream().key_value(DEFAULT_BUCKET)  # created at build time
        finally:
            await nc.close()
