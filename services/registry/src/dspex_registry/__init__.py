"""The registry service: program versions and the history of optimization runs, in SQL.
It records ProgramRegistered, OptimizeRequested, RunProgress, CandidateScored and
RunCompleted from durable consumers, announces new versions with ProgramUpdated, and
answers reads by NATS request/reply."""

from .app import create_app
from .settings import RegistrySettings

__all__ = ["RegistrySettings", "create_app"]
