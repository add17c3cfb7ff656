"""The Kubernetes deployment (deploy/k8s): every overlay builds with kustomize, passes strict
schema validation offline, and follows the rules operators rely on — probes, resources, a
hardened security context, a PodDisruptionBudget per workload, NetworkPolicies (default deny,
one per workload), secrets only from Secrets, ``DSPEX_*`` variables that are real settings of
the service they are given to, NATS that fsyncs, KEDA triggers on the real consumers."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from pydantic_settings import BaseSettings

from dspex_contracts.events.candidate import CandidateProposed
from dspex_contracts.events.execute import ExecuteRequested
from dspex_contracts.subjects import STREAMS, stream_for
from dspex_evaluator.settings import EvaluatorSettings
from dspex_kernel_service.settings import KernelSettings
from dspex_optimizer.settings import OptimizerSettings
from dspex_registry.settings import RegistrySettings
from dspex_runtime.permissions import (
    SERVICE_PERMISSIONS,
    password_variable,
    render_authorization_env,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
NAMESPACES = {"dev": "dspex-dev", "prod": "dspex"}
DASHBOARDS = ("overview.json", "lm.json", "runs.json")
GRAFANA_DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
COMPONENT_DASHBOARDS = K8S / "components" / "monitoring" / "dashboards"

# Service -> (module run by `python -m`, settings class).
SERVICES: dict[str, tuple[str, type[BaseSettings]]] = {
    "registry": ("dspex_registry", RegistrySettings),
    "kernel": ("dspex_kernel_service", KernelSettings),
    "evaluator": ("dspex_evaluator", EvaluatorSettings),
    "optimizer": ("dspex_optimizer", OptimizerSettings),
}
LM_SERVICES = ("kernel", "evaluator", "optimizer")
# Settings that are credentials: only ever from a Secret.
SECRET_SETTINGS = {
    "DSPEX_NATS_PASSWORD",
    "DSPEX_LM_API_KEY",
    "DSPEX_DATABASE_URL",
    "DSPEX_UI_TOKEN",
}
# KEDA-scaled Deployments: (settings class, event model of their durable consumer).
SCALED: dict[str, tuple[type[BaseSettings], type[CandidateProposed | ExecuteRequested]]] = {
    "evaluator": (EvaluatorSettings, CandidateProposed),
    "kernel": (KernelSettings, ExecuteRequested),
}
CUSTOM_KINDS = {"ServiceMonitor", "ScaledObject"}
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")
PLACEHOLDER = re.compile(r"dev-only|^sk-simulated$")

Doc = dict[str, Any]


# -- building ---------------------------------------------------------------------------


def _kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        # Debian's kubernetes-client is too old for kustomize components; nothing to install.
        pytest.skip("kubectl (with kustomize) is not on PATH: cannot build the overlays")
    return path


@cache
def _build(target: str) -> tuple[Doc, ...]:
    result = subprocess.run(
        [_kubectl(), "kustomize", str(K8S / target)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {target} failed:\n{result.stderr}"
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def docs(overlay: str) -> tuple[Doc, ...]:
    return _build(f"overlays/{overlay}")


def _of_kind(docs: tuple[Doc, ...], *kinds: str) -> list[Doc]:
    return [d for d in docs if d["kind"] in kinds]


def _one(docs: tuple[Doc, ...], kind: str, name: str) -> Doc:
    found = [d for d in _of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def _pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def _containers(workload: Doc, *, init: bool = True) -> Iterator[Doc]:
    spec = _pod_spec(workload)
    yield from spec["containers"]
    if init:
        yield from spec.get("initContainers", [])


def _selects(selector: Doc, labels: dict[str, str]) -> bool:
    """``selector`` (matchLabels only) selects pods with ``labels``; an empty one selects all."""
    assert not selector.get("matchExpressions"), "only matchLabels selectors are used here"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _name(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


# -- building and schemas ------------------------------------------------------------------


@pytest.mark.parametrize("target", ["base", "overlays/dev", "overlays/prod"])
def test_kustomize_builds(target: str) -> None:
    docs = _build(target)
    deployments = {d["metadata"]["name"] for d in _of_kind(docs, "Deployment")}
    assert set(SERVICES) <= deployments
    assert _one(docs, "StatefulSet", "nats")


def test_strict_schema_validation(overlay: str, docs: tuple[Doc, ...]) -> None:
    version = kubernetes_validate.latest_version()
    unknown, invalid = [], []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            unknown.append(doc["kind"])
        except jsonschema.ValidationError as e:  # kubernetes_validate's is a subclass
            invalid.append(f"{_name(doc)}: {e.message} at {list(e.absolute_path)}")
    assert not invalid, f"{overlay}: invalid documents:\n" + "\n".join(invalid)
    # Only custom resources have no schema (kubernetes-validate warns on them).
    assert set(unknown) <= CUSTOM_KINDS


def test_kubernetes_validate_cli_passes(overlay: str, tmp_path: Path) -> None:
    """The console script operators run, on the built overlay."""
    script = Path(sys.prefix) / "bin" / "kubernetes-validate"
    if not script.exists():
        script = Path(shutil.which("kubernetes-validate") or script)
    if not script.exists():
        pytest.skip("the kubernetes-validate console script is not installed")
    built = tmp_path / f"{overlay}.yaml"
    built.write_text(yaml.safe_dump_all(_build(f"overlays/{overlay}")))
    result = subprocess.run(
        [str(script), "--strict", "--quiet", str(built)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "WARN" not in line]
    assert result.returncode == 0, "\n".join(errors)


def test_everything_is_in_the_overlay_namespace(overlay: str, docs: tuple[Doc, ...]) -> None:
    for doc in docs:
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == NAMESPACES[overlay]
        else:
            assert doc["metadata"].get("namespace") == NAMESPACES[overlay], _name(doc)


def test_the_dspex_image_is_tagged(docs: tuple[Doc, ...]) -> None:
    for workload in _of_kind(docs, *WORKLOAD_KINDS):
        for container in _containers(workload):
            image = container["image"]
            assert ":" in image, f"{_name(workload)}: untagged image {image}"
            assert not image.endswith(":latest"), f"{_name(workload)}: {image}"


# -- workload policies ----------------------------------------------------------------------


def test_probes(docs: tuple[Doc, ...]) -> None:
    for workload in _of_kind(docs, "Deployment", "StatefulSet"):
        needed = ["livenessProbe", "readinessProbe"]
        if workload["kind"] == "Deployment":
            needed.append("startupProbe")
        for container in _containers(workload, init=False):
            missing = [p for p in needed if p not in container]
            assert not missing, f"{_name(workload)}/{container['name']} lacks {missing}"


def test_dspex_services_probe_healthz_and_readyz(docs: tuple[Doc, ...]) -> None:
    for name in SERVICES:
        (container,) = _containers(_one(docs, "Deployment", name), init=False)
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": 8080}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["port"] in ("http", 8080)


def test_resources(docs: tuple[Doc, ...]) -> None:
    for workload in _of_kind(docs, *WORKLOAD_KINDS):
        for container in _containers(workload):
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                got = set(resources.get(kind, {}))
                assert {"cpu", "memory"} <= got, (
                    f"{_name(workload)}/{container['name']}: {kind} {sorted(got)}"
                )


def test_hardened_security_context(docs: tuple[Doc, ...]) -> None:
    for workload in _of_kind(docs, *WORKLOAD_KINDS):
        pod = _pod_spec(workload).get("securityContext", {})
        assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", _name(workload)
        assert pod.get("runAsUser", 1) != 0, _name(workload)
        mounts_tmp = {v["name"] for v in _pod_spec(workload).get("volumes", []) if "emptyDir" in v}
        for container in _containers(workload):
            where = f"{_name(workload)}/{container['name']}"
            sc = container.get("securityContext", {})
            assert sc.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, where
            assert sc.get("runAsUser", pod.get("runAsUser", 1)) != 0, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not sc.get("capabilities", {}).get("add"), where
            assert not sc.get("privileged"), where
            # A read-only root needs somewhere to write temporary files.
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp, f"{where}: no /tmp volume"
            assert tmp[0]["name"] in mounts_tmp, f"{where}: /tmp is not an emptyDir"


def test_no_service_account_token_is_mounted(docs: tuple[Doc, ...]) -> None:
    for workload in _of_kind(docs, *WORKLOAD_KINDS):
        assert _pod_spec(workload).get("automountServiceAccountToken") is False, _name(workload)


def test_every_workload_has_a_pod_disruption_budget(docs: tuple[Doc, ...]) -> None:
    budgets = _of_kind(docs, "PodDisruptionBudget")
    for workload in _of_kind(docs, "Deployment", "StatefulSet"):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets if _selects(b["spec"]["selector"], labels)]
        assert len(covering) == 1, f"{_name(workload)}: {len(covering)} PDBs select it"
        spec = covering[0]["spec"]
        # maxUnavailable 1 lets a node drain even a single replica (dev); minAvailable would
        # block it.
        assert spec.get("maxUnavailable") == 1 or spec.get("minAvailable", 0) < workload[
            "spec"
        ].get("replicas", 1)


def test_replicas(overlay: str, docs: tuple[Doc, ...]) -> None:
    for name in SERVICES:
        replicas = _one(docs, "Deployment", name)["spec"]["replicas"]
        if overlay == "prod":
            assert replicas >= 2, f"{name}: one replica is a single point of failure"
        else:
            assert replicas == 1, name
    nats = _one(docs, "StatefulSet", "nats")
    assert nats["spec"]["replicas"] == (3 if overlay == "prod" else 1)
    assert nats["spec"]["volumeClaimTemplates"], "NATS stores JetStream on a PVC"
    mounts = {
        m["name"]: m["mountPath"]
        for m in nats["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    }
    assert mounts["data"] == "/data"


# -- commands and settings -------------------------------------------------------------------


def _config_map_data(docs: tuple[Doc, ...], name: str) -> dict[str, str]:
    data: dict[str, str] = _one(docs, "ConfigMap", name).get("data", {})
    return data


def _secret_data(docs: tuple[Doc, ...], name: str) -> dict[str, str] | None:
    """The decoded data of Secret ``name`` in the build, or None when it is created outside
    it (prod)."""
    found = [d for d in _of_kind(docs, "Secret") if d["metadata"]["name"] == name]
    if not found:
        return None
    secret = found[0]
    data = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
    data.update(secret.get("stringData", {}))
    return data


def _environment(docs: tuple[Doc, ...], container: Doc) -> dict[str, str | None]:
    """The container's environment as the kubelet would give it; values from a Secret that is
    not part of the build are None."""
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(_config_map_data(docs, source["configMapRef"]["name"]))
        else:
            env.update(_secret_data(docs, source["secretRef"]["name"]) or {})
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]
        if "configMapKeyRef" in ref:
            key = ref["configMapKeyRef"]
            env[var["name"]] = _config_map_data(docs, key["name"])[key["key"]]
        elif "secretKeyRef" in ref:
            key = ref["secretKeyRef"]
            data = _secret_data(docs, key["name"])
            env[var["name"]] = None if data is None else data[key["key"]]
        else:
            env[var["name"]] = None
    return env


def _service_containers(docs: tuple[Doc, ...]) -> Iterator[tuple[str, Doc]]:
    """Every container that runs a DSPEx service's code, with that service's name."""
    for name in SERVICES:
        for container in _containers(_one(docs, "Deployment", name)):
            yield name, container
    for container in _containers(_one(docs, "Job", "registry-migrate")):
        yield "registry", container


def test_commands_run_the_service_modules(docs: tuple[Doc, ...]) -> None:
    for name, (module, _) in SERVICES.items():
        (main,) = _containers(_one(docs, "Deployment", name), init=False)
        assert main["command"] == ["python", "-m", module]
        assert main["image"].split(":")[0].rsplit("/", 1)[-1] == "dspex"


def test_dspex_variables_are_real_settings(
    docs: tuple[Doc, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, container in _service_containers(docs):
        settings_class = SERVICES[name][1]
        prefix = settings_class.model_config.get("env_prefix", "")
        assert prefix == "DSPEX_"
        env = _environment(docs, container)
        dspex = {k: v for k, v in env.items() if k.startswith("DSPEX_")}
        fields = {f"{prefix}{field}".upper() for field in settings_class.model_fields}
        unknown = sorted(set(dspex) - fields)
        assert not unknown, f"{name}/{container['name']}: not settings of {name}: {unknown}"
        # The values parse: the settings as the pod would read them (credentials stubbed
        # where the Secret lives outside the build).
        for key in [k for k in os.environ if k.startswith("DSPEX_")]:
            monkeypatch.delenv(key)
        for key, value in dspex.items():
            monkeypatch.setenv(key, "stub" if value is None else value)
        settings = settings_class()
        assert settings.http_host == "0.0.0.0", "probes reach the pod's IP"  # type: ignore[attr-defined]
        assert settings.http_port == 8080  # type: ignore[attr-defined]


def test_credentials_come_only_from_secrets(docs: tuple[Doc, ...]) -> None:
    for config_map in _of_kind(docs, "ConfigMap"):
        leaked = SECRET_SETTINGS & set(config_map.get("data", {}))
        assert not leaked, f"{_name(config_map)} holds {leaked}"
    for name, container in _service_containers(docs):
        for var in container.get("env", []):
            if var["name"] in SECRET_SETTINGS:
                assert "secretKeyRef" in var.get("valueFrom", {}), f"{name}: {var['name']}"
    for name in SERVICES:
        (main,) = _containers(_one(docs, "Deployment", name), init=False)
        names = {v["name"] for v in main["env"]}
        assert "DSPEX_NATS_PASSWORD" in names, name
        if name in LM_SERVICES:
            assert "DSPEX_LM_API_KEY" in names, name
    for name, container in _service_containers(docs):
        if name == "registry":
            assert "DSPEX_DATABASE_URL" in {v["name"] for v in container["env"]}


def test_the_explorer_token_comes_from_an_optional_secret(
    docs: tuple[Doc, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the registry's service container reads DSPEX_UI_TOKEN, from key ``token`` of
    Secret dspex-ui, created in the cluster when wanted: without it the pod still starts
    (``optional``), the variable is unset and the run explorer read-only."""
    registry = _one(docs, "Deployment", "registry")
    (main,) = _containers(registry, init=False)
    (token,) = [v for v in main["env"] if v["name"] == "DSPEX_UI_TOKEN"]
    assert "value" not in token, "a literal token"
    assert token["valueFrom"] == {
        "secretKeyRef": {"name": "dspex-ui", "key": "token", "optional": True}
    }
    assert _secret_data(docs, "dspex-ui") is None, "the token Secret is never in the repository"
    for name, container in _service_containers(docs):
        if container is not main:
            names = {v["name"] for v in container.get("env", [])}
            assert "DSPEX_UI_TOKEN" not in names, f"{name}/{container['name']}"
    for key in [k for k in os.environ if k.startswith("DSPEX_")]:
        monkeypatch.delenv(key)
    settings = RegistrySettings()
    assert settings.ui_enabled
    assert settings.ui_token is None, "absent means read-only"


def test_the_readme_creates_the_secrets_the_explorer_reads() -> None:
    docs = _build("overlays/prod")
    (main,) = _containers(_one(docs, "Deployment", "registry"), init=False)
    (token,) = [
        v["valueFrom"]["secretKeyRef"] for v in main["env"] if v["name"] == "DSPEX_UI_TOKEN"
    ]
    readme = (K8S / "README.md").read_text()
    assert f"create secret generic {token['name']} --from-literal={token['key']}=" in readme
    for tls in _one(docs, "Ingress", "explorer")["spec"]["tls"]:
        assert f"create secret tls {tls['secretName']} " in readme


def _nats_secret(name: str) -> str:
    """``name`` without the hash suffix a secretGenerator (dev) gives it."""
    return re.sub(r"-[a-z0-9]{10}$", "", name) if name.startswith("dspex-nats-") else name


def test_each_service_is_its_own_nats_user(overlay: str, docs: tuple[Doc, ...]) -> None:
    """DSPEX_NATS_USER is the service's name (a user of dspex_runtime.permissions), and its
    password comes from its own key of Secret dspex-nats, which holds one key per user."""
    secret_names = set()
    for name in SERVICES:
        (main,) = _containers(_one(docs, "Deployment", name), init=False)
        assert name in SERVICE_PERMISSIONS, name
        assert _environment(docs, main)["DSPEX_NATS_USER"] == name, name
        (password,) = [v for v in main["env"] if v["name"] == "DSPEX_NATS_PASSWORD"]
        ref = password["valueFrom"]["secretKeyRef"]
        assert (_nats_secret(ref["name"]), ref["key"]) == ("dspex-nats", name), name
        assert not ref.get("optional"), name
        secret_names.add(ref["name"])
    for config_map in _of_kind(docs, "ConfigMap"):
        assert "DSPEX_NATS_USER" not in config_map.get("data", {}), _name(config_map)
    # The migration talks to PostgreSQL only: no NATS credential.
    migrations = [*_pod_spec(_one(docs, "Deployment", "registry"))["initContainers"]]
    migrations += _containers(_one(docs, "Job", "registry-migrate"))
    for container in migrations:
        assert not {v["name"] for v in container.get("env", [])} & {"DSPEX_NATS_PASSWORD"}
    (secret_name,) = secret_names
    nats_secret = _secret_data(docs, secret_name)
    if overlay == "prod":
        assert nats_secret is None, "prod's Secret is created in the cluster"
    else:
        assert nats_secret is not None
        assert set(nats_secret) == set(SERVICE_PERMISSIONS)
        assert len(set(nats_secret.values())) == len(nats_secret), "passwords are shared"


def test_no_real_secret_values(overlay: str, docs: tuple[Doc, ...]) -> None:
    secrets = _of_kind(docs, "Secret")
    if overlay == "prod":
        # Prod's credentials are created in the cluster, never kept in the repository.
        assert not [s for s in secrets if s.get("data") or s.get("stringData")]
        return
    assert secrets
    for secret in secrets:
        for key, value in (_secret_data(docs, secret["metadata"]["name"]) or {}).items():
            assert PLACEHOLDER.search(value), f"{_name(secret)}[{key}] is not a placeholder"


def test_migrations_run_before_the_registry(overlay: str, docs: tuple[Doc, ...]) -> None:
    migrate = ["python", "-m", "dspex_registry", "migrate"]
    registry = _one(docs, "Deployment", "registry")
    (init,) = _pod_spec(registry)["initContainers"]
    assert init["command"] == migrate
    (main,) = _containers(registry, init=False)
    assert init["image"] == main["image"]
    job = _one(docs, "Job", "registry-migrate")
    (job_container,) = _containers(job)
    assert job_container["command"] == migrate
    assert job_container["image"] == main["image"]
    env = _environment(docs, main)
    assert env["DSPEX_AUTO_MIGRATE"] == "false"
    has_postgres = any(d["metadata"]["name"] == "postgres" for d in _of_kind(docs, "StatefulSet"))
    assert has_postgres == (overlay == "dev"), "dev runs PostgreSQL, prod uses an external one"
    url = env["DSPEX_DATABASE_URL"]
    if overlay == "dev":
        assert url is not None
        assert url.startswith("postgresql://")
        assert "@postgres:5432/" in url


def test_dev_uses_the_simulated_lm(overlay: str, docs: tuple[Doc, ...]) -> None:
    if overlay != "dev":
        assert not [d for d in _of_kind(docs, "Deployment") if d["metadata"]["name"] == "simlm"]
        return
    simlm = _one(docs, "Deployment", "simlm")
    (container,) = _containers(simlm)
    assert container["command"] == [
        "python",
        "-m",
        "dspex_simlm",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]
    service = _one(docs, "Service", "simlm")
    assert service["spec"]["ports"][0]["port"] == 8000
    for name in LM_SERVICES:
        (main,) = _containers(_one(docs, "Deployment", name), init=False)
        assert _environment(docs, main)["DSPEX_LM_API_BASE"] == "http://simlm:8000/v1"


# -- NATS -----------------------------------------------------------------------------------


def _nats_conf(docs: tuple[Doc, ...]) -> str:
    nats = _one(docs, "StatefulSet", "nats")
    (volume,) = [v for v in _pod_spec(nats)["volumes"] if "configMap" in v]
    return _config_map_data(docs, volume["configMap"]["name"])["nats.conf"]


def _nats_files(docs: tuple[Doc, ...]) -> dict[str, str]:
    nats = _one(docs, "StatefulSet", "nats")
    (volume,) = [v for v in _pod_spec(nats)["volumes"] if "configMap" in v]
    return _config_map_data(docs, volume["configMap"]["name"])


def test_nats_jetstream_fsyncs_every_write(docs: tuple[Doc, ...]) -> None:
    conf = _nats_conf(docs)
    jetstream = re.search(r"jetstream\s*\{(.*?)\}", conf, re.S)
    assert jetstream, "no jetstream block"
    assert re.search(r"^\s*sync_interval\s*:\s*always\s*$", jetstream.group(1), re.M)
    assert re.search(r"store_dir\s*:\s*/data/", jetstream.group(1))


def _uncommented(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if line[:1] != "#")


def test_nats_users_are_the_permission_table(docs: tuple[Doc, ...]) -> None:
    """nats.conf includes auth.conf, dspex_runtime.permissions rendered with the passwords
    left to the server's environment, which the StatefulSet fills from dspex-nats."""
    conf = re.sub(r"#.*", "", _nats_conf(docs))
    assert re.search(r"^include\s+\"?auth\.conf\"?\s*$", conf, re.M)
    assert not re.search(r"^\s*(authorization|accounts|no_auth_user)\b", conf, re.M)
    assert _uncommented(_nats_files(docs)["auth.conf"]) == render_authorization_env(), (
        "deploy/k8s/base/auth.conf differs from dspex_runtime.permissions: run "
        "deploy/nats/render-auth.sh"
    )
    (container,) = _containers(_one(docs, "StatefulSet", "nats"), init=False)
    passwords = {
        v["name"]: {**v["valueFrom"]["secretKeyRef"]}
        for v in container["env"]
        if v["name"].endswith("_PASSWORD")
    }
    for ref in passwords.values():
        ref["name"] = _nats_secret(ref["name"])
    assert passwords == {
        password_variable(name): {"name": "dspex-nats", "key": name} for name in SERVICE_PERMISSIONS
    }


def test_nats_server_accepts_the_config(docs: tuple[Doc, ...], tmp_path: Path) -> None:
    """The built nats-config, as mounted on /etc/nats, with the StatefulSet's environment."""
    server = Path(sys.executable).parent / "nats-server"
    if not server.exists():
        pytest.skip("nats-server is not installed in the virtualenv")
    for key, text in _nats_files(docs).items():
        (tmp_path / key).write_text(text)
    (container,) = _containers(_one(docs, "StatefulSet", "nats"), init=False)
    # POD_NAME (the downward API) and prod's passwords (a Secret outside the build) stubbed.
    env = {k: "stub" if v is None else v for k, v in _environment(docs, container).items()}
    argv = [str(server), "-t", "-c", str(tmp_path / "nats.conf")]
    ok = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    without = {k: v for k, v in env.items() if k != password_variable("kernel")}
    refused = subprocess.run(argv, env=without, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0, "NATS starts without a user's password"


def test_base_auth_conf_is_the_compose_one() -> None:
    """deploy/nats/render-auth.sh writes both; kustomize loads no file outside its root."""
    base = (K8S / "base" / "auth.conf").read_text()
    assert base == (REPO / "deploy" / "nats" / "auth.conf").read_text()


def test_prod_nats_is_a_three_node_cluster(overlay: str, docs: tuple[Doc, ...]) -> None:
    conf = _nats_conf(docs)
    cluster = re.search(r"cluster\s*\{(.*?)\n\}", conf, re.S)
    replicas = _one(docs, "StatefulSet", "nats")["spec"]["replicas"]
    stream_replicas = int(_config_map_data(docs, _env_config_map(docs))["DSPEX_STREAM_REPLICAS"])
    if overlay != "prod":
        assert cluster is None
        assert replicas == stream_replicas == 1
        return
    assert cluster, "prod NATS has no cluster block"
    routes = set(re.findall(r"nats://(nats-\d+)\.nats-headless:6222", cluster.group(1)))
    assert routes == {f"nats-{i}" for i in range(3)}
    assert replicas == stream_replicas == 3
    headless = _one(docs, "Service", "nats-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True


def _env_config_map(docs: tuple[Doc, ...]) -> str:
    (main,) = _containers(_one(docs, "Deployment", "registry"), init=False)
    return str(main["envFrom"][0]["configMapRef"]["name"])


# -- network policies -------------------------------------------------------------------------


def _policies_for(docs: tuple[Doc, ...], labels: dict[str, str]) -> list[Doc]:
    """The NetworkPolicies written for these pods (not the namespace-wide ones)."""
    return [
        p
        for p in _of_kind(docs, "NetworkPolicy")
        if p["spec"]["podSelector"].get("matchLabels")
        and _selects(p["spec"]["podSelector"], labels)
    ]


def _ports(rules: list[Doc]) -> set[int]:
    return {port["port"] for rule in rules for port in rule.get("ports", [])}


def test_default_deny(docs: tuple[Doc, ...]) -> None:
    deny = [
        p
        for p in _of_kind(docs, "NetworkPolicy")
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, "no default-deny NetworkPolicy"
    dns = [
        p
        for p in _of_kind(docs, "NetworkPolicy")
        if p["spec"]["podSelector"] == {} and 53 in _ports(p["spec"].get("egress", []))
    ]
    assert dns, "no DNS egress for the namespace"


def test_every_workload_has_a_network_policy(docs: tuple[Doc, ...]) -> None:
    for workload in _of_kind(docs, *WORKLOAD_KINDS):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert _policies_for(docs, labels), f"no NetworkPolicy selects {_name(workload)}"


def test_services_reach_only_what_they_need(docs: tuple[Doc, ...]) -> None:
    for name in SERVICES:
        labels = _one(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        policies = _policies_for(docs, labels)
        ingress = [r for p in policies for r in p["spec"].get("ingress", [])]
        egress = [r for p in policies for r in p["spec"].get("egress", [])]
        # Prometheus scrapes :8080, and nothing else comes in.
        assert _ports(ingress) == {8080}, name
        expected = {4222} | ({5432} if name == "registry" else set())
        if name in LM_SERVICES:
            expected |= {443, 8000}
        assert _ports(egress) == expected, name
    nats = _policies_for(docs, {"app.kubernetes.io/name": "nats"})
    assert {4222, 6222, 8222} == _ports([r for p in nats for r in p["spec"]["ingress"]])
    # The services' pods carry the labels NATS admits clients by.
    (client_rule,) = [r for p in nats for r in p["spec"]["ingress"] if _ports([r]) == {4222}]
    for name in SERVICES:
        labels = _one(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert any(_selects(peer["podSelector"], labels) for peer in client_rule["from"]), name


def _admits(rule: Doc, namespace: str, labels: dict[str, str], *, same: bool) -> bool:
    """Ingress ``rule`` admits a pod with ``labels`` in ``namespace`` (the policy's own
    namespace when ``same``); namespaces are matched by kubernetes.io/metadata.name."""
    for peer in rule.get("from", []):
        pods = peer.get("podSelector")
        namespaces = peer.get("namespaceSelector")
        if namespaces is None:
            if same and pods is not None and _selects(pods, labels):
                return True
        elif _selects(namespaces, {"kubernetes.io/metadata.name": namespace}) and (
            pods is None or _selects(pods, labels)
        ):
            return True
    return False


def test_the_registry_admits_the_run_explorer(overlay: str, docs: tuple[Doc, ...]) -> None:
    """Port 8080 of the registry (the explorer's /ui and /api) from any pod of the namespace
    and from the ingress controller; the other services' 8080 from Prometheus only."""
    registry = _one(docs, "Deployment", "registry")["spec"]["template"]["metadata"]["labels"]
    ingress = [r for p in _policies_for(docs, registry) for r in p["spec"].get("ingress", [])]
    explorer = [r for r in ingress if _ports([r]) == {8080}]
    namespace = NAMESPACES[overlay]
    assert any(_admits(r, namespace, {"app": "anything"}, same=True) for r in explorer)
    assert any(_admits(r, "ingress-nginx", {"app": "controller"}, same=False) for r in explorer)
    assert not any(_admits(r, "elsewhere", {"app": "anything"}, same=False) for r in ingress)
    for name in SERVICES:
        if name == "registry":
            continue
        labels = _one(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        rules = [r for p in _policies_for(docs, labels) for r in p["spec"].get("ingress", [])]
        assert not any(_admits(r, namespace, {"app": "x"}, same=True) for r in rules), name
        assert not any(_admits(r, "ingress-nginx", {}, same=False) for r in rules), name


def test_prod_serves_the_explorer_through_an_ingress(overlay: str, docs: tuple[Doc, ...]) -> None:
    ingresses = _of_kind(docs, "Ingress")
    if overlay != "prod":
        assert not ingresses, "dev reaches the explorer with kubectl port-forward"
        return
    (ingress,) = ingresses
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    backend = path["backend"]["service"]
    service = _one(docs, "Service", backend["name"])
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "registry"}
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports[backend["port"]["name"]]["targetPort"] == "http"
    # The token of the explorer's actions crosses it: TLS for the rule's host.
    assert any(rule["host"] in tls["hosts"] for tls in ingress["spec"]["tls"])


# -- KEDA -----------------------------------------------------------------------------------


def test_keda_scales_evaluator_and_kernel_on_their_consumers(
    overlay: str, docs: tuple[Doc, ...]
) -> None:
    scaled = _of_kind(docs, "ScaledObject")
    if overlay == "dev":
        assert not scaled, "dev runs without KEDA"
        return
    targets = {s["spec"]["scaleTargetRef"]["name"]: s for s in scaled}
    assert set(targets) == set(SCALED)
    for name, (settings_class, event) in SCALED.items():
        spec = targets[name]["spec"]
        assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        _one(docs, "Deployment", name)
        assert spec["minReplicaCount"] >= 1, f"{name} must not scale to zero"
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "nats-jetstream"
        metadata = trigger["metadata"]
        assert metadata["consumer"] == settings_class().durable  # type: ignore[attr-defined]
        assert metadata["stream"] == stream_for(event.SUBJECT)
        assert metadata["stream"] in STREAMS
        host = metadata["natsServerMonitoringEndpoint"]
        assert host == f"nats.{NAMESPACES[overlay]}.svc.cluster.local:8222"
        assert int(metadata["lagThreshold"]) >= 1


# -- monitoring -----------------------------------------------------------------------------


def test_service_monitors_scrape_every_service(docs: tuple[Doc, ...]) -> None:
    monitors = _of_kind(docs, "ServiceMonitor")
    for name in SERVICES:
        service = _one(docs, "Service", name)
        ports = {p["name"] for p in service["spec"]["ports"]}
        found = [
            m for m in monitors if _selects(m["spec"]["selector"], service["metadata"]["labels"])
        ]
        assert len(found) == 1, f"{len(found)} ServiceMonitors select {name}"
        (endpoint,) = found[0]["spec"]["endpoints"]
        assert endpoint["port"] in ports
        assert endpoint.get("path", "/metrics") == "/metrics"


def test_dashboards_are_config_maps(docs: tuple[Doc, ...]) -> None:
    maps = [
        m
        for m in _of_kind(docs, "ConfigMap")
        if m["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    files = {key: value for m in maps for key, value in m["data"].items()}
    assert set(files) == set(DASHBOARDS)
    for content in files.values():
        assert "title" in json.loads(content)


@pytest.mark.parametrize("dashboard", DASHBOARDS)
def test_dashboard_copies_match_their_source(dashboard: str) -> None:
    copy = COMPONENT_DASHBOARDS / dashboard
    assert copy.is_file()
    json.loads(copy.read_text())
    source = GRAFANA_DASHBOARDS / dashboard
    if not source.is_file():
        pytest.skip(f"{source.relative_to(REPO)} does not exist yet")
    assert copy.read_bytes() == source.read_bytes(), (
        f"{copy.relative_to(REPO)} differs from its source: run "
        "deploy/k8s/components/monitoring/sync-dashboards.sh"
    )


def test_every_grafana_dashboard_is_deployed() -> None:
    sources = {p.name for p in GRAFANA_DASHBOARDS.glob("*.json")}
    if not sources:
        pytest.skip("deploy/grafana/dashboards has no dashboards yet")
    assert sources <= set(DASHBOARDS), (
        f"not in the monitoring component: {sources - set(DASHBOARDS)}"
    )
