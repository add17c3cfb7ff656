"""Configuration every DSPEx service shares, read from ``DSPEX_*`` environment variables.
A service subclasses :class:`ServiceSettings` with its own fields."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Settings of one service replica. Lists are given as JSON in the environment
    (``DSPEX_BACKOFF_S='[1, 5, 15]'``)."""

    model_config = SettingsConfigDict(env_prefix="DSPEX_", extra="ignore")

    service_name: str = Field(default="service", description="Name in logs, metrics, traces.")
    nats_url: str = Field(default="nats://127.0.0.1:4222", description="NATS server URL(s).")
    nats_user: str | None = Field(default=None, description="User for password auth.")
    nats_password: SecretStr | None = Field(default=None, description="Password of nats_user.")
    nats_nkey_seed_file: Path | None = Field(
        default=None, description="NKey seed file (needs the `nkeys` package)."
    )
    nats_connect_timeout_s: float = Field(default=5.0, gt=0)
    nats_reconnect_wait_s: float = Field(default=2.0, gt=0)
    nats_max_reconnect_attempts: int = Field(
        default=-1, description="-1 retries forever: a service outlives a broker restart."
    )
    http_host: str = Field(default="127.0.0.1", description="Bind address of /healthz etc.")
    http_port: int = Field(default=8080, ge=0, le=65535, description="0 picks a free port.")
    log_level: str = Field(default="INFO")
    log_json: bool = Field(default=True, description="JSON lines on stderr; else plain text.")
    concurrency: int = Field(default=16, ge=1, description="Messages handled at once per replica.")
    ack_wait_s: float = Field(default=30.0, gt=0, description="Redelivery after silence.")
    max_deliver: int = Field(default=5, ge=1, description="Deliveries before dead-lettering.")
    backoff_s: list[float] = Field(
        default_factory=lambda: [1.0, 5.0, 15.0],
        description="Delay before redelivery after the n-th failed attempt (last one repeats).",
    )
    max_payload_bytes: int = Field(
        default=1_048_576, ge=1, description="Larger messages: too_large."
    )
    duplicate_window_s: float = Field(
        default=600.0, gt=0, description="How long a stream remembers Nats-Msg-Ids."
    )
    stream_max_msg_bytes: int = Field(
        default=-1,
        description="Largest message a stream stores (-1: the server's max_payload). Keep it "
        "above max_payload_bytes, or oversized messages are refused at publish and never "
        "reach the dead-letter subject.",
    )
    stream_max_age_s: float = Field(default=0.0, ge=0, description="0 keeps messages forever.")
    stream_replicas: int = Field(default=1, ge=1, le=5, description="Copies in a NATS cluster.")
    graceful_timeout_s: float = Field(
        default=30.0, gt=0, description="How long shutdown waits for in-flight handlers."
    )
    readiness_timeout_s: float = Field(default=2.0, gt=0, description="NATS ping of /readyz.")
    publish_timeout_s: float = Field(default=5.0, gt=0, description="Wait for a PubAck.")
    consumer_lag_interval_s: float = Field(
        default=5.0, gt=0, description="How often the consumer lag gauges are refreshed."
    )

    def backoff_for(self, deliveries: int) -> float:
        """Delay before redelivering a message whose ``deliveries``-th attempt failed."""
        if not self.backoff_s:
            return 0.0
        return self.backoff_s[min(max(deliveries, 1), len(self.backoff_s)) - 1]
