"""The kernel service: a stateless executor of programs. It consumes ExecuteRequested from a
durable consumer shared by all replicas and answers ExecuteCompleted or ExecuteFailed; it
also answers synchronous calls by NATS request/reply."""

from .app import create_app
from .settings import KernelSettings

__all__ = ["KernelSettings", "create_app"]
