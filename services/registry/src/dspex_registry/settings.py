"""Registry service settings, from ``DSPEX_*`` environment variables."""

from __future__ import annotations

from pydantic import Field

from dspex_runtime.settings import ServiceSettings


class RegistrySettings(ServiceSettings):
    service_name: str = "registry"
    durable: str = Field(
        default="registry",
        description="Prefix of the registry's durable consumers (one per event it records); "
        "shared by its replicas, distinct from every other service's.",
    )
    database_url: str = Field(
        default="sqlite+aiosqlite:///./dspex.db",
        description="SQLAlchemy URL; postgresql:// and sqlite:// get their async drivers.",
        repr=False,  # it may hold a password: never in a repr, a log or a traceback
    )
    database_schema: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$",
        description="PostgreSQL schema of the registry's tables (created when missing), so "
        "that several deployments or test runs can share one database.",
    )
    auto_migrate: bool | None = Field(
        default=None,
        description="Upgrade the schema at start; unset means yes for SQLite and no for "
        "PostgreSQL, where `python -m dspex_registry migrate` runs as a deployment Job.",
    )

    @property
    def migrate_at_start(self) -> bool:
        if self.auto_migrate is not None:
            return self.auto_migrate
        return self.database_url.startswith("sqlite")
