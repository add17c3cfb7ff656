"""The kernel service's LM client, built from settings: one client per replica, its
response cache shared by all replicas through NATS KV when configured."""

from __future__ import annotations

from dspex_kernel import Endpoint, InMemoryLRUCache, LMClient, ResponseCache

from ..settings import KernelSettings


def build_lm_client(settings: KernelSettings, cache: ResponseCache | None) -> LMClient:
    key = settings.lm_api_key.get_secret_value() if settings.lm_api_key else None
    if cache is None and settings.lm_cache == "memory":
        cache = InMemoryLRUCache()
    return LMClient(
        endpoint=Endpoint(api_base=settings.lm_api_base, api_key=key),
        cache=cache,
        max_retries=settings.lm_max_retries,
        timeout_s=settings.lm_timeout_s,
        prices=settings.lm_prices,
    )
