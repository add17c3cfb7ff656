"""Registry service settings, from ``DSPEX_*`` environment variables."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator

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
    ui_enabled: bool = Field(
        default=True,
        description="Serve the run explorer (pages under /ui, its HTTP API under /api) on the "
        "service's HTTP port.",
    )
    ui_token: SecretStr | None = Field(
        default=None,
        description="Token that the explorer's pause, resume and cancel actions require (as "
        "`Authorization: Bearer <token>`); unset, the explorer is read-only.",
    )

    @field_validator("ui_token", mode="before")
    @classmethod
    def _no_empty_token(cls, value: Any) -> Any:
        # An empty variable (`DSPEX_UI_TOKEN=` in a .env file, an empty Secret key) means
        # no token, never a token that an empty Authorization header would match.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @property
    def migrate_at_start(self) -> bool:
        if self.auto_migrate is not None:
            return self.auto_migrate
        return self.database_url.startswith("sqlite")
