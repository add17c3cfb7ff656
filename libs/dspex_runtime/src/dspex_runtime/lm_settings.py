"""LM configuration shared by the services that run programs (kernel, evaluator): the
operator's model, endpoint, key, retries, cache and prices from ``DSPEX_LM_*``, the LM client
built from them, and the operator's allow-list of metrics that events may name."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from nats.aio.client import Client
from nats.js import JetStreamContext
from pydantic import Field, SecretStr, field_validator

from dspex_kernel import (
    BUILTIN_METRICS,
    Endpoint,
    InMemoryLRUCache,
    LMClient,
    LMObserver,
    Metric,
    get_metric,
)
from dspex_kernel.cache import ResponseCache
from dspex_kernel.errors import MetricError

from .settings import ServiceSettings

__all__ = ["LMServiceSettings", "UnknownMetricError", "build_lm_client", "resolve_metric"]

# A metric name as events may carry it (dspex_contracts' MetricName), and the import path an
# operator maps it to.
_METRIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class UnknownMetricError(MetricError):
    """An event named a metric that is neither built in nor allow-listed."""

    code = "unknown_metric"
    status = 404


class LMServiceSettings(ServiceSettings):
    """Settings of a service whose replicas call LMs. Environment: ``DSPEX_LM_MODEL``,
    ``DSPEX_LM_API_BASE``, ``DSPEX_LM_API_KEY``, ``DSPEX_LM_CACHE``, ``DSPEX_LM_PRICES``
    (JSON), ``DSPEX_USER_METRICS`` (JSON), ..."""

    lm_model: str | None = Field(
        default=None, description="Model of programs whose configuration names none."
    )
    lm_api_base: str | None = Field(
        default=None, description="OpenAI-compatible endpoint; None: the provider's own."
    )
    lm_api_key: SecretStr | None = Field(default=None, description="Key of that endpoint.")
    lm_max_retries: int = Field(default=3, ge=0, description="Retries of a failed LM call.")
    lm_timeout_s: float = Field(default=60.0, gt=0, description="Per LM call attempt.")
    lm_cache: Literal["none", "memory", "nats"] = Field(
        default="nats",
        description="Response cache: none, per replica (memory), or shared by all replicas "
        "in a NATS KV bucket (nats).",
    )
    lm_prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="USD per 1M prompt and completion tokens, for models litellm has no price for.",
    )
    user_metrics: dict[str, str] = Field(
        default_factory=dict,
        description="The operator's allow-list: metric name -> 'package.module:function'. "
        "Events name metrics; only these (and the built-ins) can be imported.",
        examples=[{"accuracy": "my_metrics.scoring:accuracy"}],
    )

    @field_validator("user_metrics")
    @classmethod
    def _allow_list(cls, value: dict[str, str]) -> dict[str, str]:
        for name, path in value.items():
            if not _METRIC_NAME.match(name):
                raise ValueError(f"metric name {name!r}: letters, digits, '_' and '-' only")
            if name in BUILTIN_METRICS:
                raise ValueError(f"metric name {name!r} is a built-in metric")
            if not _IMPORT_PATH.match(path):
                raise ValueError(f"metric {name!r}: {path!r} is not 'package.module:function'")
        return value


async def build_lm_client(
    settings: LMServiceSettings,
    js: JetStreamContext | Client | None,
    *,
    observers: Sequence[LMObserver] = (),
) -> LMClient:
    """The replica's LM client, ready to call (litellm loaded), telling ``observers`` of
    every call (a service passes its :class:`~dspex_runtime.lm_metrics.LMMetrics`). With
    ``lm_cache="nats"`` the response cache is the KV bucket shared by every replica
    (created if needed), which needs ``js``."""
    cache: ResponseCache | None = None
    if settings.lm_cache == "memory":
        cache = InMemoryLRUCache()
    elif settings.lm_cache == "nats":
        if js is None:
            raise ValueError("lm_cache='nats' needs a NATS connection")
        from .kv_cache import NatsKVCache

        cache = await NatsKVCache.create(js)
    key = settings.lm_api_key.get_secret_value() if settings.lm_api_key else None
    client = LMClient(
        endpoint=Endpoint(api_base=settings.lm_api_base, api_key=key),
        cache=cache,
        max_retries=settings.lm_max_retries,
        timeout_s=settings.lm_timeout_s,
        prices=settings.lm_prices,
        observers=observers,
    )
    # litellm is imported during start-up, before the replica reports itself ready.
    await client.prepare()
    return client


def resolve_metric(name: str, settings: LMServiceSettings) -> Metric:
    """The metric an event names: a built-in, or one the operator allow-listed in
    ``user_metrics``. Anything else, import paths included, is :class:`UnknownMetricError`;
    an allow-listed path that cannot be imported is a ``MetricError``."""
    if name in BUILTIN_METRICS:
        return BUILTIN_METRICS[name]
    path = settings.user_metrics.get(name)
    if path is None:
        allowed = sorted([*BUILTIN_METRICS, *settings.user_metrics])
        raise UnknownMetricError(f"unknown metric {name!r}; this service offers {allowed}")
    return get_metric(path, allow_import=True)
