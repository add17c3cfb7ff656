"""Settings from the environment, and NATS user/password authentication against a server that
requires it."""

from __future__ import annotations

from pathlib import Path

import nats
import nats.errors
import pytest
from runtime_helpers import request

from dspex_runtime import ServiceRuntime, ServiceSettings
from dspex_runtime.broker import nats_security
from dspex_runtime.testing.nats import NatsServer


class KernelLikeSettings(ServiceSettings):
    model_name: str = "openai/gpt-4o-mini"


@pytest.mark.unit
def test_settings_come_from_dspex_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSPEX_SERVICE_NAME", "kernel")
    monkeypatch.setenv("DSPEX_NATS_URL", "nats://nats.example:4222")
    monkeypatch.setenv("DSPEX_NATS_USER", "svc")
    monkeypatch.setenv("DSPEX_NATS_PASSWORD", "s3cret")
    monkeypatch.setenv("DSPEX_CONCURRENCY", "64")
    monkeypatch.setenv("DSPEX_BACKOFF_S", "[0.5, 2, 8]")
    monkeypatch.setenv("DSPEX_LOG_JSON", "false")
    monkeypatch.setenv("DSPEX_MODEL_NAME", "ollama/llama3")

    settings = KernelLikeSettings()

    assert settings.service_name == "kernel"
    assert settings.nats_url == "nats://nats.example:4222"
    assert settings.concurrency == 64
    assert settings.backoff_s == [0.5, 2.0, 8.0]
    assert settings.log_json is False
    assert settings.model_name == "ollama/llama3"
    assert settings.nats_password is not None
    assert settings.nats_password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


@pytest.mark.unit
def test_backoff_grows_then_repeats_its_last_step() -> None:
    settings = ServiceSettings(backoff_s=[1.0, 5.0, 15.0])
    assert [settings.backoff_for(n) for n in (1, 2, 3, 4, 9)] == [1.0, 5.0, 15.0, 15.0, 15.0]
    assert ServiceSettings(backoff_s=[]).backoff_for(3) == 0.0


@pytest.mark.unit
def test_security_is_chosen_from_the_settings(tmp_path: Path) -> None:
    assert nats_security(ServiceSettings()) is None
    user = nats_security(ServiceSettings(nats_user="svc", nats_password="pw"))
    assert type(user).__name__ == "NatsUserPassword"
    with pytest.raises(ValueError, match="not both"):
        nats_security(ServiceSettings(nats_user="svc", nats_nkey_seed_file=tmp_path / "svc.nk"))


@pytest.mark.integration
async def test_user_password_auth() -> None:
    async with NatsServer(users=[{"user": "svc", "password": "s3cret"}]) as server:
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(server.url, allow_reconnect=False)

        anonymous = ServiceRuntime(
            ServiceSettings(
                nats_url=server.url, nats_max_reconnect_attempts=1, nats_reconnect_wait_s=0.1
            )
        )
        with pytest.raises(nats.errors.Error):
            await anonymous.ensure_streams()

        runtime = ServiceRuntime(
            ServiceSettings(nats_url=server.url, nats_user="svc", nats_password="s3cret")
        )
        try:
            await runtime.ensure_streams()
            await runtime.publish(request("ok"))
            nc = await nats.connect(server.url, user="svc", password="s3cret")
            info = await nc.jetstream().stream_info("DSPEX_EXEC")
            await nc.close()
        finally:
            await runtime.broker.stop()
        assert info.state.messages == 1


@pytest.mark.integration
async def test_ensure_streams_brings_an_existing_stream_up_to_date(
    nats_server: NatsServer,
) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(name="DSPEX_EXEC", subjects=["dspex.exec.>"], duplicate_window=60)
    runtime = ServiceRuntime(ServiceSettings(nats_url=nats_server.url, duplicate_window_s=900))
    try:
        await runtime.ensure_streams()
        await runtime.ensure_streams()
    finally:
        await runtime.broker.stop()
    info = await js.stream_info("DSPEX_EXEC")
    await nc.close()
    assert info.config.duplicate_window == 900


def _user_nkey_seed() -> bytes:
    """A fresh user NKey seed, encoded the way `nk -gen user` writes it."""
    import os

    import nkeys

    return bytes(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER))


@pytest.mark.integration
async def test_nkey_auth(tmp_path: Path) -> None:
    import nkeys

    seed = _user_nkey_seed()
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    seed_file = tmp_path / "kernel.nk"
    seed_file.write_bytes(seed)
    async with NatsServer(users=[{"nkey": public}]) as server:
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(server.url, allow_reconnect=False)
        runtime = ServiceRuntime(
            ServiceSettings(nats_url=server.url, nats_nkey_seed_file=seed_file)
        )
        try:
            await runtime.ensure_streams()
            await runtime.publish(request("ok"))
        finally:
            await runtime.broker.stop()
