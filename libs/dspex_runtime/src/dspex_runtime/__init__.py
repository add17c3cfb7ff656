"""The runtime every DSPEx service shares: settings, the NATS JetStream edge (consumers,
responders, publishing, dead letters), health, readiness, metrics, JSON logs and tracing."""

from .errors import DeadLetter, Retry
from .handling import Delivery, Handler, ReplyHandler
from .logs import configure_logging, correlation_id
from .service import ServiceRuntime
from .settings import ServiceSettings

__all__ = [
    "DeadLetter",
    "Delivery",
    "Handler",
    "ReplyHandler",
    "Retry",
    "ServiceRuntime",
    "ServiceSettings",
    "configure_logging",
    "correlation_id",
]
