"""Idempotent declaration of DSPEx's JetStream streams (contracts.subjects.STREAMS): file
storage, the de-duplication window of the settings, created or brought up to date."""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from dspex_contracts.subjects import STREAMS

from .settings import ServiceSettings

_log = logging.getLogger(__name__)

# JetStream's answer to creating a stream that exists with another configuration.
_STREAM_NAME_IN_USE = 10058


def stream_config(name: str, settings: ServiceSettings) -> StreamConfig:
    return StreamConfig(
        name=name,
        subjects=list(STREAMS[name]),
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        storage=StorageType.FILE,
        duplicate_window=settings.duplicate_window_s,
        max_age=settings.stream_max_age_s or None,
        max_msg_size=settings.stream_max_msg_bytes,
        num_replicas=settings.stream_replicas,
    )


async def ensure_streams(js: JetStreamContext, settings: ServiceSettings) -> None:
    """Create every stream, or update it when its configuration differs. Safe to run from
    every replica at every start."""
    for name in STREAMS:
        config = stream_config(name, settings)
        try:
            await js.add_stream(config)
        except BadRequestError as e:
            if e.err_code != _STREAM_NAME_IN_USE:
                raise
            await js.update_stream(config)
            _log.info("updated stream %s", name)
