"""The authorization block the deployments include (deploy/nats/auth.conf): the permission
table with every password a reference to the server's environment."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from dspex_runtime.permissions import (
    CLIENT,
    SERVICE_PERMISSIONS,
    password_variable,
    render_authorization,
    render_authorization_env,
)
from dspex_runtime.testing.nats import nats_server_binary

pytestmark = pytest.mark.unit


def test_password_variables_are_named_after_the_user() -> None:
    assert password_variable("kernel") == "NATS_KERNEL_PASSWORD"
    assert password_variable(CLIENT) == "NATS_CLIENT_PASSWORD"


def test_env_block_is_the_table_with_variable_passwords() -> None:
    block = render_authorization_env()
    for name in SERVICE_PERMISSIONS:
        assert f'"password": ${password_variable(name)},' in block
    # The same users and permissions as with literal passwords, in the same order.
    literal = render_authorization(dict.fromkeys(SERVICE_PERMISSIONS, "X"))
    assert re.sub(r'"password": \$\w+', '"password": "X"', block) == literal
    # Subjects stay JSON strings: "$JS.API.>" is a subject, not a variable.
    assert '"$JS.API.>"' in block
    assert json.loads(block.splitlines()[2].rstrip(",").replace("$NATS_REGISTRY_PASSWORD", '""'))


def test_env_block_for_some_users_only() -> None:
    block = render_authorization_env(["kernel"])
    assert "$NATS_KERNEL_PASSWORD" in block
    assert "NATS_REGISTRY_PASSWORD" not in block
    with pytest.raises(KeyError):
        render_authorization_env(["nobody"])


def _check(conf: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(nats_server_binary()), "-t", "-c", str(conf)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_nats_server_resolves_the_passwords_from_its_environment(tmp_path: Path) -> None:
    (tmp_path / "auth.conf").write_text(render_authorization_env(), encoding="utf-8")
    conf = tmp_path / "nats-server.conf"
    conf.write_text("listen: 127.0.0.1:4222\ninclude auth.conf\n", encoding="utf-8")
    env = {password_variable(name): f"pw-{name}" for name in SERVICE_PERMISSIONS}
    ok = _check(conf, env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    missing = _check(conf, {k: v for k, v in env.items() if k != "NATS_CLIENT_PASSWORD"})
    assert missing.returncode != 0
    assert "NATS_CLIENT_PASSWORD" in missing.stdout + missing.stderr
