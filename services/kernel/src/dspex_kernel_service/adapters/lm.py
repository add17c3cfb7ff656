"""The kernel service's LM runtime: the shared LM client of the settings (one per replica,
its response cache shared by all replicas through NATS KV when configured), or an injected
one, with the operator's default model."""

from __future__ import annotations

from collections.abc import Sequence

from nats.js import JetStreamContext

from dspex_kernel import LM, LMObserver, Runtime
from dspex_runtime.lm_settings import build_lm_client

from ..settings import KernelSettings


async def build_runtime(
    settings: KernelSettings,
    js: JetStreamContext,
    lm: LM | None = None,
    *,
    observers: Sequence[LMObserver] = (),
) -> Runtime:
    """The replica's runtime; ``observers`` hear of the configured client's calls (an
    injected ``lm`` is the injector's to observe)."""
    client = lm if lm is not None else await build_lm_client(settings, js, observers=observers)
    return Runtime(client, model=settings.lm_model)
