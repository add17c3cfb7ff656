"""Least privilege on the bus: the subjects each service (and a client) may publish and
subscribe, and the nats-server ``authorization`` block that gives each one its own user.

Consumed events arrive through pull requests (``$JS.API.CONSUMER.MSG.NEXT``) answered on the
client's inbox, so a service subscribes to no event subject of its own streams; it publishes
the events it emits, acks, and the key-value and object stores it uses. The JetStream API is
allowed as a whole (``$JS.API.>``, as FACTS.md says a JetStream client needs), except the
calls that destroy streams, which no service makes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dspex_contracts import REGISTRY_RPC_PREFIX, subjects
from dspex_contracts.subjects import stream_for

from .datasets import DATASET_BUCKET
from .deadletters import max_deliveries_subject
from .kv_cache import DEFAULT_BUCKET as LM_CACHE_BUCKET

__all__ = [
    "CLIENT",
    "SERVICE_PERMISSIONS",
    "Permissions",
    "authorization_config",
    "nats_users",
    "password_variable",
    "render_authorization",
    "render_authorization_env",
]

CLIENT = "client"

_JETSTREAM = ("$JS.API.>", "$JS.ACK.>")
_INBOX = "_INBOX.>"
_REGISTRY_RPC = f"{REGISTRY_RPC_PREFIX}.>"
_OPTIMIZER_BUCKETS = ("dspex_run_log", "dspex_run_control")
# No service deletes or purges a stream; a leaked credential must not either.
_JETSTREAM_DENY = (
    "$JS.API.STREAM.DELETE.>",
    "$JS.API.STREAM.PURGE.>",
    "$JS.API.ACCOUNT.PURGE.>",
)


def _kv(bucket: str) -> str:
    return f"$KV.{bucket}.>"


def _advisories(*consumers: tuple[str, str]) -> tuple[str, ...]:
    """Max-deliveries advisories of (subject, durable) consumers: how the runtime
    dead-letters a message that kept failing."""
    return tuple(max_deliveries_subject(stream_for(s), d) for s, d in consumers)


@dataclass(frozen=True)
class Permissions:
    """What one NATS user may do. ``allow_responses`` lets it answer the requests it
    received (request/reply responders) without publishing to every inbox."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool = False
    publish_deny: tuple[str, ...] = _JETSTREAM_DENY

    def as_config(self) -> dict[str, Any]:
        """The ``permissions`` value of a nats-server user."""
        config: dict[str, Any] = {
            "publish": {"allow": list(self.publish), "deny": list(self.publish_deny)},
            "subscribe": {"allow": list(self.subscribe)},
        }
        if self.allow_responses:
            config["allow_responses"] = True
        return config


SERVICE_PERMISSIONS: dict[str, Permissions] = {
    # The run explorer's pause, resume and cancel buttons publish the run control events;
    # every replica announces the run changes it records on a core-NATS subject that every
    # replica (plain subscription, no queue group) listens to, to refresh its open pages.
    "registry": Permissions(
        publish=(
            subjects.PROGRAM_UPDATED,
            subjects.RUN_PAUSE,
            subjects.RUN_RESUME,
            subjects.RUN_CANCEL,
            subjects.RUN_CHANGED_NOTICE,
            subjects.DEAD_LETTER,
            *_JETSTREAM,
        ),
        subscribe=(
            _REGISTRY_RPC,
            subjects.RUN_CHANGED_NOTICE,
            _INBOX,
            *_advisories(
                (subjects.PROGRAM_REGISTERED, "registry-programs"),
                (subjects.OPTIMIZE_REQUESTED, "registry-requests"),
                (subjects.RUN_PROGRESS, "registry-progress"),
                (subjects.CANDIDATE_SCORED, "registry-candidates"),
                (subjects.RUN_COMPLETED, "registry-completed"),
            ),
        ),
        allow_responses=True,
    ),
    "kernel": Permissions(
        publish=(
            subjects.EXEC_COMPLETED,
            subjects.EXEC_FAILED,
            subjects.DEAD_LETTER,
            _REGISTRY_RPC,
            _kv(LM_CACHE_BUCKET),
            *_JETSTREAM,
        ),
        subscribe=(
            subjects.EXEC_CALL,
            subjects.PROGRAM_UPDATED,
            _INBOX,
            *_advisories((subjects.EXEC_REQUESTED, "kernel")),
        ),
        allow_responses=True,
    ),
    "evaluator": Permissions(
        publish=(
            subjects.CANDIDATE_SCORED,
            subjects.DEAD_LETTER,
            _REGISTRY_RPC,
            _kv(LM_CACHE_BUCKET),
            *_JETSTREAM,
        ),
        subscribe=(
            subjects.PROGRAM_UPDATED,
            _INBOX,
            *_advisories((subjects.CANDIDATE_PROPOSED, "evaluator")),
        ),
    ),
    "optimizer": Permissions(
        publish=(
            subjects.CANDIDATE_PROPOSED,
            subjects.RUN_PROGRESS,
            subjects.RUN_COMPLETED,
            subjects.DEAD_LETTER,
            _REGISTRY_RPC,
            _kv(LM_CACHE_BUCKET),
            *(_kv(bucket) for bucket in _OPTIMIZER_BUCKETS),
            f"$O.{DATASET_BUCKET}.>",
            *_JETSTREAM,
        ),
        subscribe=(
            subjects.PROGRAM_UPDATED,
            _INBOX,
            *_advisories(
                (subjects.OPTIMIZE_REQUESTED, "optimizer"),
                (subjects.CANDIDATE_SCORED, "optimizer-scores"),
                (subjects.RUN_PAUSE, "optimizer-pause"),
                (subjects.RUN_RESUME, "optimizer-resume"),
                (subjects.RUN_CANCEL, "optimizer-cancel"),
            ),
        ),
    ),
    # The SDK and CLI: requests in, every DSPEx event out (watching runs and answers).
    CLIENT: Permissions(
        publish=(
            subjects.EXEC_REQUESTED,
            subjects.EXEC_CALL,
            subjects.PROGRAM_REGISTERED,
            subjects.OPTIMIZE_REQUESTED,
            subjects.RUN_PAUSE,
            subjects.RUN_RESUME,
            subjects.RUN_CANCEL,
            _REGISTRY_RPC,
            f"$O.{DATASET_BUCKET}.>",
            *_JETSTREAM,
        ),
        subscribe=(f"{subjects.PREFIX}.>", _INBOX),
    ),
}


def nats_users(passwords: Mapping[str, str]) -> list[dict[str, Any]]:
    """One nats-server user per name in ``passwords`` (a service kind or ``client``), named
    after it and limited to its :data:`SERVICE_PERMISSIONS`."""
    users = []
    for name, password in passwords.items():
        if name not in SERVICE_PERMISSIONS:
            raise KeyError(f"no permissions for {name!r}; known: {sorted(SERVICE_PERMISSIONS)}")
        users.append(
            {
                "user": name,
                "password": password,
                "permissions": SERVICE_PERMISSIONS[name].as_config(),
            }
        )
    return users


def authorization_config(passwords: Mapping[str, str]) -> dict[str, Any]:
    """The value of the server's top-level ``authorization`` key."""
    return {"users": nats_users(passwords)}


def render_authorization(passwords: Mapping[str, str]) -> str:
    """The ``authorization { users = [...] }`` block of a nats-server configuration file.
    Strings are JSON-quoted, so ``$JS.API.>`` is a subject, not a variable."""
    return _authorization_block([json.dumps(user) for user in nats_users(passwords)])


def password_variable(name: str) -> str:
    """The environment variable of the NATS server that holds user ``name``'s password in
    the deployments (docker-compose, Kubernetes): ``NATS_KERNEL_PASSWORD``."""
    return f"NATS_{name.upper()}_PASSWORD"


def render_authorization_env(names: Iterable[str] = tuple(SERVICE_PERMISSIONS)) -> str:
    """:func:`render_authorization` with each password a reference to the server's
    environment (``password: $NATS_KERNEL_PASSWORD``, see :func:`password_variable`), which
    nats-server resolves at start and refuses to start without: the block the deployment
    configurations include, with no secret in it. Every user of the table by default."""
    users = []
    for user in nats_users(dict.fromkeys(names, "")):
        name = user["user"]
        users.append(
            f'{{"user": {json.dumps(name)}, "password": ${password_variable(name)}, '
            f'"permissions": {json.dumps(user["permissions"])}}}'
        )
    return _authorization_block(users)


def _authorization_block(users: list[str]) -> str:
    entries = ",\n".join(f"    {user}" for user in users)
    return f"authorization {{\n  users = [\n{entries}\n  ]\n}}\n"


if __name__ == "__main__":
    # deploy/nats/render-auth.sh: the auth.conf the deployments' NATS configurations include.
    print(
        "# Generated from dspex_runtime.permissions by deploy/nats/render-auth.sh; do not edit.\n"
        "# One NATS user per DSPEx service (and the client), limited to its subjects; each\n"
        "# password comes from the server's environment variable NATS_<USER>_PASSWORD.",
    )
    print(render_authorization_env(), end="")
