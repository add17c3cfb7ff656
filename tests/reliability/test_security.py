"""Least privilege and secrets, tested (issue 7, part 6). Every service runs in-process as
its own NATS user with the permissions of :mod:`dspex_runtime.permissions`; normal traffic
(an execution, a small optimization run) flows without a single permissions violation; a
user is refused the subjects outside its permissions; the LM key and the database password
appear in no log line, stored message, metric or span; a metric is never imported from a
path an event names; and no event or saved program can set an LM endpoint."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
import traceback
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dspex_client.stack import Stack, StackOptions
from dspex_contracts import (
    CandidateProposed,
    CandidateProposedPayload,
    DatasetRef,
    EvaluationSettings,
    ExecuteRequested,
    ExecuteRequestedPayload,
    OptimizeRequested,
    OptimizeRequestedPayload,
    ProgramRef,
    ProgramRegistered,
    ProgramRegisteredPayload,
    ProgramSource,
    call_id_for,
    subjects,
)
from dspex_evaluator import EvaluatorSettings
from dspex_evaluator import create_app as create_evaluator
from dspex_kernel import ProgramSpec, load_examples
from dspex_kernel.errors import ProgramError
from dspex_kernel_service import KernelSettings
from dspex_kernel_service import create_app as create_kernel
from dspex_optimizer import OptimizerSettings
from dspex_optimizer import create_app as create_optimizer
from dspex_registry import RegistrySettings
from dspex_registry import create_app as create_registry
from dspex_registry.app import open_sql_store
from dspex_runtime import datasets
from dspex_runtime.lm_settings import LMServiceSettings, UnknownMetricError, resolve_metric
from dspex_runtime.logs import JsonFormatter
from dspex_runtime.permissions import CLIENT, SERVICE_PERMISSIONS, nats_users, render_authorization
from dspex_runtime.service import ServiceRuntime
from dspex_runtime.streams import ensure_streams
from dspex_runtime.testing.nats import NatsServer, nats_server_binary
from dspex_runtime.testing.serving import serve_started
from dspex_simlm import PRICES
from dspex_simlm.testing import SimLMProcess

pytestmark = pytest.mark.integration

MATH_QA = Path(__file__).resolve().parents[2] / "examples" / "math_qa"
LM_KEY = "sk-SECRET-canary-123"
DB_PASSWORD = "pg-SECRET-canary"
CANARIES = (LM_KEY, DB_PASSWORD)
PASSWORDS = {name: f"pw-{name}-0123456789" for name in SERVICE_PERMISSIONS}
ADMIN = ("admin", "pw-admin-0123456789")  # the test's own unrestricted user, for reading
WAIT_S = 120.0


@pytest.fixture(scope="module")
def sim_api_base() -> Iterator[str]:
    with SimLMProcess() as sim:
        yield sim.api_base


@pytest.fixture
def server() -> Iterator[NatsServer]:
    users = [*nats_users(PASSWORDS), {"user": ADMIN[0], "password": ADMIN[1]}]
    with NatsServer(users=users, extra={"max_payload": 2_097_152}) as started:
        yield started


async def eventually(check: Any, what: str, timeout_s: float = WAIT_S) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Bus:
    """The four services, each as its own NATS user, and an admin connection that records
    every DSPEx event."""

    server: NatsServer
    spans: InMemorySpanExporter
    admin: Client
    services: dict[str, ServiceRuntime] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    def of(self, subject: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["_subject"] == subject]

    async def connect(self, user: str, errors: list[Exception] | None = None) -> Client:
        async def on_error(e: Exception) -> None:
            if errors is not None:
                errors.append(e)

        return await nats.connect(
            self.server.url,
            user=user,
            password=PASSWORDS[user],
            error_cb=on_error,
            max_reconnect_attempts=0,
        )


def _common(server: NatsServer, user: str) -> dict[str, Any]:
    return {
        "nats_url": server.url,
        "nats_user": user,
        "nats_password": PASSWORDS[user],
        "http_port": 0,
        "backoff_s": [0.1],
        "log_level": "DEBUG",
    }


def _lm(sim_api_base: str) -> dict[str, Any]:
    # The key itself comes from DSPEX_LM_API_KEY, as in a deployment.
    return {"lm_api_base": sim_api_base, "lm_prices": PRICES, "lm_model": "openai/sim-base"}


@pytest.fixture
async def bus(
    server: NatsServer,
    sim_api_base: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Bus]:
    monkeypatch.setenv("DSPEX_LM_API_KEY", LM_KEY)
    # SQLite URLs carry no password (SQLAlchemy refuses one): see the PostgreSQL test below.
    monkeypatch.setenv("DSPEX_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    datasets.clear_cache()
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    admin = await nats.connect(server.url, user=ADMIN[0], password=ADMIN[1])
    result = Bus(server, spans, admin)

    async def record(msg: Msg) -> None:
        result.events.append({**json.loads(msg.data), "_subject": msg.subject})

    await admin.subscribe(f"{subjects.PREFIX}.>", cb=record)
    apps: list[tuple[ServiceRuntime, Any]] = [
        create_registry(RegistrySettings(**_common(server, "registry")), tracer_provider=provider),
        create_kernel(
            KernelSettings(**_common(server, "kernel"), **_lm(sim_api_base)),
            tracer_provider=provider,
        ),
        create_evaluator(
            EvaluatorSettings(**_common(server, "evaluator"), **_lm(sim_api_base)),
            tracer_provider=provider,
        ),
    ]
    optimizer, optimizer_app = create_optimizer(
        OptimizerSettings(**_common(server, "optimizer"), **_lm(sim_api_base)),
        tracer_provider=provider,
    )
    apps.append((optimizer.service, optimizer_app))
    tasks: list[asyncio.Task[None]] = []
    try:
        for service, app in apps:
            tasks.append(await serve_started(service, app))
            result.services[service.settings.service_name] = service
        yield result
    finally:
        for service, _ in apps:
            if service.http_server is not None:
                service.http_server.should_exit = True
        for task in tasks:
            await asyncio.wait_for(task, 30)
        await admin.close()


def _math_qa() -> dict[str, Any]:
    return ProgramSpec.load(MATH_QA / "program.yaml").to_data()


async def _publish(nc: Client, event: Any) -> None:
    await nc.jetstream().publish(
        event.SUBJECT, event.model_dump_json().encode(), headers={"Nats-Msg-Id": event.id}
    )


def _violations(server: NatsServer) -> list[str]:
    return [line for line in server.read_log().splitlines() if "Violation" in line]


# -- normal traffic, each service as its own user, and no secret anywhere -------------------


async def test_services_as_their_own_users_serve_traffic_and_leak_no_secret(
    bus: Bus, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await bus.connect(CLIENT)
    try:
        # A saved program, executed by reference: the kernel asks the registry over RPC.
        await _publish(client, ProgramRegistered.create(ProgramRegisteredPayload(spec=_math_qa())))
        await eventually(lambda: bus.of(subjects.PROGRAM_UPDATED), "ProgramUpdated")
        request = ExecuteRequested.create(
            ExecuteRequestedPayload(
                program=ProgramSource(ref=ProgramRef(name="math_qa")),
                inputs={"question": "What is 2 plus 3?"},
            )
        )
        await _publish(client, request)
        await eventually(lambda: bus.of(subjects.EXEC_COMPLETED), "ExecuteCompleted")
        # Request/reply too: the kernel answers the client's inbox.
        call = ExecuteRequested.create(
            ExecuteRequestedPayload(
                program=ProgramSource(spec=_math_qa()), inputs={"question": "What is 1 plus 1?"}
            )
        )
        reply = await client.request(subjects.EXEC_CALL, call.model_dump_json().encode(), 60)
        assert json.loads(reply.data)["type"] == "ExecuteCompleted"

        examples = load_examples(MATH_QA / "dev.jsonl")[:8]
        trainset = await datasets.put_dataset(client, examples)  # the object store, as client
        run = OptimizeRequested.create(
            OptimizeRequestedPayload(
                run_id="secure-run",
                program=ProgramSource(ref=ProgramRef(name="math_qa")),
                trainset=trainset,
                metric="numeric",
                strategy="random",
                strategy_params={"n_candidates": 2},
                seed=3,
                evaluation=EvaluationSettings(batch_size=4),
            )
        )
        await _publish(client, run)
        await eventually(lambda: bus.of(subjects.RUN_COMPLETED), "RunCompleted")
    finally:
        await client.close()
    completed = bus.of(subjects.RUN_COMPLETED)[0]["payload"]
    assert (completed["status"], completed["error"]) == ("completed", None)
    assert completed["evaluations"] == 3
    assert not bus.of(subjects.DEAD_LETTER), [e["payload"] for e in bus.of(subjects.DEAD_LETTER)]
    assert _violations(bus.server) == []

    scanned = await _scan_everything(bus, caplog, capfd)
    print(f"\nsecurity: scanned {scanned} for {list(CANARIES)}: none found")


async def _scan_everything(
    bus: Bus, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> str:
    """Every place a secret could leak to, as text: log records (formatted as the services
    write them, with their extra fields), the process's stdout/stderr, every message of every
    stream (KV and object stores included), every service's /metrics, every span."""
    formatter = JsonFormatter()
    logs = [formatter.format(r) + repr(r.__dict__) for r in caplog.records]
    out, err = capfd.readouterr()
    sys.stdout.write(out)  # keep the test's own output visible
    stored = await _read_all_streams(bus.admin)
    metrics = []
    async with httpx.AsyncClient() as http:
        for service in bus.services.values():
            response = await http.get(f"http://127.0.0.1:{service.http_port}/metrics")
            assert response.status_code == 200
            metrics.append(response.text)
    spans = [span.to_json() for span in bus.spans.get_finished_spans()]
    places = {
        "log records": logs,
        "stdout/stderr": [out, err],
        "stored messages": stored,
        "metrics": metrics,
        "spans": spans,
    }
    for place, texts in places.items():
        assert texts, f"nothing to scan in {place}"
        for text in texts:
            for canary in CANARIES:
                assert canary not in text, f"{canary!r} leaked into {place}: {text[:2000]}"
    # The scan can see a secret: the JetStream streams do hold the run's own data.
    assert any("secure-run" in text for text in stored)
    return ", ".join(f"{len(texts)} {place}" for place, texts in places.items())


async def _read_all_streams(nc: Client) -> list[str]:
    js = nc.jetstream()
    texts = []
    for info in await js.streams_info():
        state, name = info.state, info.config.name
        if not state.messages or name is None:
            continue
        for seq in range(state.first_seq, state.last_seq + 1):
            try:
                msg = await js.get_msg(name, seq)
            except NotFoundError:
                continue  # deleted or expired
            headers = json.dumps(msg.headers or {})
            texts.append(f"{msg.subject} {headers} {(msg.data or b'').decode(errors='replace')}")
    return texts


# -- a user is refused what its permissions do not allow ----------------------------------

FORBIDDEN_PUBLISH = [
    ("kernel", subjects.RUN_COMPLETED),
    ("kernel", subjects.PROGRAM_UPDATED),
    ("kernel", subjects.CANDIDATE_SCORED),
    ("evaluator", subjects.EXEC_COMPLETED),
    ("evaluator", subjects.RUN_COMPLETED),
    ("optimizer", subjects.PROGRAM_UPDATED),
    ("optimizer", subjects.CANDIDATE_SCORED),
    ("registry", subjects.EXEC_REQUESTED),
    ("evaluator", subjects.RUN_CHANGED_NOTICE),
    ("kernel", subjects.RUN_PAUSE),
    ("optimizer", subjects.RUN_CANCEL),
    (CLIENT, subjects.RUN_COMPLETED),
    (CLIENT, subjects.CANDIDATE_SCORED),
    ("kernel", "$KV.dspex_run_control.secure-run"),
    ("kernel", "$JS.API.STREAM.DELETE.DSPEX_RUN"),
    ("optimizer", "$JS.API.STREAM.PURGE.DSPEX_EXEC"),
]
FORBIDDEN_SUBSCRIBE = [
    ("kernel", "dspex.run.>"),
    ("kernel", f"{subjects.PREFIX}.>"),
    ("kernel", "dspex.rpc.registry.v1.get_program"),
    ("evaluator", subjects.EXEC_CALL),
    ("optimizer", subjects.EXEC_REQUESTED),
    ("registry", subjects.EXEC_CALL),
    ("evaluator", subjects.RUN_CHANGED_NOTICE),
    ("kernel", ">"),
]


async def _connect(server: NatsServer, user: str, errors: list[Exception]) -> Client:
    async def on_error(e: Exception) -> None:
        errors.append(e)

    password = ADMIN[1] if user == ADMIN[0] else PASSWORDS[user]
    return await nats.connect(
        server.url, user=user, password=password, error_cb=on_error, max_reconnect_attempts=0
    )


def _refused(errors: list[Exception], subject: str, action: str) -> bool:
    needle = f'permissions violation for {action} to "{subject}"'.lower()
    return any(isinstance(e, NatsError) and needle in str(e).lower() for e in errors)


@pytest.mark.parametrize(("user", "subject"), FORBIDDEN_PUBLISH)
async def test_a_publish_outside_the_users_permissions_is_refused(
    server: NatsServer, user: str, subject: str
) -> None:
    errors: list[Exception] = []
    nc = await _connect(server, user, errors)
    try:
        await nc.publish(subject, b'{"forged": true}')
        await nc.flush()
        await eventually(lambda: errors, f"the refusal of {user} publishing {subject}", 5)
    finally:
        await nc.close()
    assert _refused(errors, subject, "publish"), errors
    assert any(
        f'user:{user}" - Publish Violation - Subject "{subject}"' in line
        for line in _violations(server)
    )


@pytest.mark.parametrize(("user", "subject"), FORBIDDEN_SUBSCRIBE)
async def test_a_subscription_outside_the_users_permissions_is_refused(
    server: NatsServer, user: str, subject: str
) -> None:
    errors: list[Exception] = []
    nc = await _connect(server, user, errors)
    admin = await _connect(server, ADMIN[0], [])
    received: list[Msg] = []

    async def on_msg(msg: Msg) -> None:
        received.append(msg)

    try:
        await nc.subscribe(subject, cb=on_msg)
        await nc.flush()
        await eventually(lambda: errors, f"the refusal of {user} subscribing {subject}", 5)
        # Nothing reaches it either.
        await admin.publish(subject.replace(">", "probe"), b"{}")
        await admin.flush()
        await asyncio.sleep(0.2)
    finally:
        await nc.close()
        await admin.close()
    assert _refused(errors, subject, "subscription"), errors
    assert received == []


async def test_the_registry_may_control_runs_and_announce_their_changes(
    server: NatsServer,
) -> None:
    """What the run explorer does as the registry's user: PauseRun, ResumeRun and CancelRun
    through JetStream (stored), and the run-changed notice, which every replica hears."""
    errors: list[Exception] = []
    admin = await _connect(server, ADMIN[0], [])
    replica = await _connect(server, "registry", errors)
    other_replica = await _connect(server, "registry", errors)
    notices: list[Msg] = []

    async def on_notice(msg: Msg) -> None:
        notices.append(msg)

    stored: dict[str, str] = {}
    try:
        await ensure_streams(admin.jetstream(), RegistrySettings())
        await other_replica.subscribe(subjects.RUN_CHANGED_NOTICE, cb=on_notice)
        await other_replica.flush()
        for subject in (subjects.RUN_PAUSE, subjects.RUN_RESUME, subjects.RUN_CANCEL):
            ack = await replica.jetstream().publish(subject, b"{}", timeout=5.0)
            stored[subject] = ack.stream
        await replica.publish(subjects.RUN_CHANGED_NOTICE, b"run-1")
        await replica.flush()
        await eventually(lambda: notices, "the run-changed notice", 5)
    finally:
        await replica.close()
        await other_replica.close()
        await admin.close()
    assert errors == []
    assert stored == {subject: subjects.stream_for(subject) for subject in stored}
    assert [msg.data for msg in notices] == [b"run-1"]
    assert not _violations(server)


async def test_a_forged_event_through_jetstream_is_never_stored(server: NatsServer) -> None:
    """The kernel's credentials cannot end a run: the stream does not store the forgery."""
    errors: list[Exception] = []
    admin = await _connect(server, ADMIN[0], [])
    nc = await _connect(server, "kernel", errors)
    try:
        await ensure_streams(admin.jetstream(), KernelSettings())
        with pytest.raises(nats.errors.TimeoutError):
            await nc.jetstream().publish(subjects.RUN_COMPLETED, b"{}", timeout=1.0)
        info = await admin.jetstream().stream_info("DSPEX_RUN")
    finally:
        await nc.close()
        await admin.close()
    assert info.state.messages == 0
    assert _refused(errors, subjects.RUN_COMPLETED, "publish")


# -- metrics come from the operator's allow-list only --------------------------------------

CANARY_MODULE = "dspex_canary_metric"


@pytest.fixture
def canary_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable module that leaves a marker file when (and only when) it is imported."""
    marker = tmp_path / "imported"
    code = (
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\n\n"
        "def score(example, prediction):\n    return 1.0\n"
    )
    (tmp_path / f"{CANARY_MODULE}.py").write_text(code, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, CANARY_MODULE, raising=False)
    return marker


def _imported(marker: Path) -> bool:
    return marker.exists() or CANARY_MODULE in sys.modules


def _proposal(metric: str, **payload: Any) -> dict[str, Any]:
    """A CandidateProposed as JSON, edited after validation: what a hostile or buggy
    publisher could send."""
    event = CandidateProposed.create(
        CandidateProposedPayload(
            run_id="hostile",
            call_id=call_id_for("hostile", 1),
            candidate_id="c0001",
            program=ProgramSource(spec=_math_qa()),
            dataset=DatasetRef(examples=load_examples(MATH_QA / "dev.jsonl")[:2]),
            example_indices=[0, 1],
            metric="numeric",
        )
    )
    data = event.model_dump(mode="json")
    data["payload"].update(metric=metric, **payload)
    return data


async def _dead_letter_of(bus: Bus, event_id: str) -> dict[str, Any]:
    def found() -> list[dict[str, Any]]:
        return [e for e in bus.of(subjects.DEAD_LETTER) if e["payload"]["original_id"] == event_id]

    await eventually(found, f"the dead letter of {event_id}", 60)
    payload: dict[str, Any] = found()[0]["payload"]
    return payload


async def test_a_metric_named_by_import_path_is_dead_lettered_and_never_imported(
    bus: Bus, canary_module: Path
) -> None:
    optimizer = await bus.connect("optimizer")  # only the optimizer may propose candidates
    try:
        proposal = _proposal(f"{CANARY_MODULE}:score")
        await optimizer.jetstream().publish(
            subjects.CANDIDATE_PROPOSED, json.dumps(proposal).encode()
        )
        dead = await _dead_letter_of(bus, proposal["id"])
    finally:
        await optimizer.close()
    print(f"\nsecurity: import-path metric dead-lettered: {dead['reason']}: {dead['message']}")
    assert "import path" in dead["message"]
    assert not _imported(canary_module)


async def test_a_metric_not_allow_listed_is_unknown_and_never_imported(
    bus: Bus, canary_module: Path
) -> None:
    optimizer = await bus.connect("optimizer")
    try:
        proposal = _proposal(CANARY_MODULE)  # a valid name, not on the operator's list
        await optimizer.jetstream().publish(
            subjects.CANDIDATE_PROPOSED, json.dumps(proposal).encode()
        )
        dead = await _dead_letter_of(bus, proposal["id"])
        await eventually(lambda: bus.of(subjects.CANDIDATE_SCORED), "the failed score")
    finally:
        await optimizer.close()
    assert dead["reason"] == "unknown_metric", dead
    scored = bus.of(subjects.CANDIDATE_SCORED)[0]["payload"]
    assert scored["error"]["code"] == "unknown_metric"
    assert not _imported(canary_module)


def test_only_the_operators_allow_list_maps_a_metric_name_to_code(canary_module: Path) -> None:
    with pytest.raises(UnknownMetricError):
        resolve_metric(CANARY_MODULE, LMServiceSettings())
    assert not _imported(canary_module)
    allowed = LMServiceSettings(user_metrics={"canary": f"{CANARY_MODULE}:score"})
    assert resolve_metric("canary", allowed)({"a": 1}, {"a": 1}) == 1.0
    assert canary_module.exists()


# -- no event or saved program chooses the LM endpoint --------------------------------------

ENDPOINT_KEYS = ("api_base", "base_url", "api_key", "endpoint")


@pytest.fixture
async def attacker() -> AsyncIterator[list[str]]:
    """An endpoint that records every connection made to it."""
    connections: list[str] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(str(writer.get_extra_info("peername")))
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connections.append(f"http://127.0.0.1:{port}/v1")  # [0]: its URL
    async with server:
        yield connections


def _with_endpoint(key: str, url: str) -> dict[str, Any]:
    spec = _math_qa()
    spec["configuration"]["defaults"][key] = url
    return spec


@pytest.mark.parametrize("key", ENDPOINT_KEYS)
async def test_an_endpoint_in_a_program_or_its_overrides_is_refused(
    bus: Bus, attacker: list[str], key: str
) -> None:
    url = attacker[0]
    client = await bus.connect(CLIENT)
    replies = []
    try:
        for program, overrides in (
            (_with_endpoint(key, url), {}),  # in the program's configuration
            (_math_qa(), {f"*.{key}": url}),  # as an override of all stages
            (_math_qa(), {f"solve.{key}": url}),  # of one stage
        ):
            request = {
                "program": {"spec": program},
                "inputs": {"question": "What is 2 plus 2?"},
                "overrides": overrides,
            }
            event = ExecuteRequested.create(ExecuteRequestedPayload.model_validate(request))
            reply = await client.request(subjects.EXEC_CALL, event.model_dump_json().encode(), 60)
            replies.append(json.loads(reply.data))
    finally:
        await client.close()
    for reply in replies:
        assert reply["type"] == "ExecuteFailed", reply
        assert key in reply["payload"]["error"]["message"], reply
    print(f"\nsecurity: {key} refused: {replies[0]['payload']['error']['message'][:200]}")
    assert attacker[1:] == []  # nothing connected to it


@pytest.mark.parametrize("key", ENDPOINT_KEYS)
async def test_a_saved_program_cannot_carry_an_endpoint(
    bus: Bus, attacker: list[str], key: str
) -> None:
    client = await bus.connect(CLIENT)
    try:
        event = ProgramRegistered.create(
            ProgramRegisteredPayload(spec=_with_endpoint(key, attacker[0]))
        )
        await _publish(client, event)
        dead = await _dead_letter_of(bus, event.id)
    finally:
        await client.close()
    assert key in dead["message"], dead
    assert not bus.of(subjects.PROGRAM_UPDATED)
    # Nor a variable whose values would set it.
    spec = _math_qa()
    spec["variables"] = {
        "variables": [
            {"name": "where", "kind": "choice", "path": f"*.{key}", "choices": [attacker[0]]}
        ]
    }
    with pytest.raises(ProgramError, match=key):
        ProgramSpec.from_data(spec)


@pytest.mark.parametrize("key", ENDPOINT_KEYS)
async def test_an_endpoint_in_an_events_lm_settings_is_dead_lettered(
    bus: Bus, attacker: list[str], key: str
) -> None:
    optimizer = await bus.connect("optimizer")
    try:
        proposal = _proposal("numeric", lm={"model": "openai/sim-base", key: attacker[0]})
        await optimizer.jetstream().publish(
            subjects.CANDIDATE_PROPOSED, json.dumps(proposal).encode()
        )
        dead = await _dead_letter_of(bus, proposal["id"])
    finally:
        await optimizer.close()
    assert key in dead["message"], dead
    assert attacker[1:] == []


# -- a database password stays out of the logs when the database fails ----------------------


async def test_a_database_password_is_not_logged_when_the_database_is_unreachable(
    server: NatsServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """SQLite URLs carry no password, so the run above cannot show one: here the registry is
    pointed at a PostgreSQL that does not answer, the place a URL is most likely printed."""
    caplog.set_level(logging.DEBUG)
    port = _closed_port()
    monkeypatch.setenv(
        "DSPEX_DATABASE_URL", f"postgresql://dspex:{DB_PASSWORD}@127.0.0.1:{port}/dspex"
    )
    settings = RegistrySettings(**_common(server, "registry"), auto_migrate=True)
    # What the registry does at start; uvicorn logs the traceback of what it raises.
    with pytest.raises(Exception) as failed:  # noqa: PT011 - any failure, its text matters
        await open_sql_store(settings)
    out, err = capfd.readouterr()
    formatter = JsonFormatter()
    texts = [
        out,
        err,
        "".join(traceback.format_exception(failed.value)),
        *(formatter.format(r) for r in caplog.records),
    ]
    assert any("127.0.0.1" in text and str(port) in text for text in texts), "no failure logged"
    for text in texts:
        assert DB_PASSWORD not in text, text[:2000]


def test_the_registry_settings_do_not_show_the_database_password() -> None:
    url = f"postgresql://dspex:{DB_PASSWORD}@db:5432/dspex"
    assert DB_PASSWORD not in repr(RegistrySettings(database_url=url))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- the embedded stack, one NATS user per service -------------------------------------------


def test_the_embedded_stack_runs_with_one_nats_user_per_service(tmp_path: Path) -> None:
    options = StackOptions(data_dir=tmp_path, nats_port=0, http_base_port=None, nats_auth=True)
    with Stack(options) as stack:
        info = stack.info()
        password = Path(info["nats_password_file"]).read_text(encoding="utf-8").strip()
        assert Path(info["nats_password_file"]).stat().st_mode & 0o077 == 0
        reply = asyncio.run(_execute_as_client(stack.nats_url, info["nats_user"], password))
        nats_log = (stack.log_dir / "nats.log").read_text(encoding="utf-8", errors="replace")
    assert reply["type"] == "ExecuteCompleted", reply
    assert "Server is ready" in nats_log
    assert "Violation" not in nats_log


async def _execute_as_client(url: str, user: str, password: str) -> dict[str, Any]:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):  # anonymous
        await nats.connect(url, max_reconnect_attempts=0, allow_reconnect=False)
    nc = await nats.connect(url, user=user, password=password)
    try:
        event = ExecuteRequested.create(
            ExecuteRequestedPayload(
                program=ProgramSource(spec=_math_qa()), inputs={"question": "What is 3 plus 4?"}
            )
        )
        reply = await nc.request(subjects.EXEC_CALL, event.model_dump_json().encode(), 60)
        answer: dict[str, Any] = json.loads(reply.data)
        return answer
    finally:
        await nc.close()


def test_the_rendered_authorization_block_is_a_valid_server_configuration(tmp_path: Path) -> None:
    """What an operator pastes into nats-server.conf: subjects such as ``$JS.API.>`` stay
    subjects, not variables, and the server accepts the file."""
    block = render_authorization(PASSWORDS)
    conf = tmp_path / "nats-server.conf"
    conf.write_text(f"listen: 127.0.0.1:4222\njetstream: {{}}\n{block}", encoding="utf-8")
    checked = subprocess.run(
        [str(nats_server_binary()), "-t", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert block.startswith("authorization {\n  users = [")
    assert '"$JS.API.>"' in block


async def test_a_model_string_cannot_point_the_lm_call_elsewhere(
    bus: Bus, attacker: list[str]
) -> None:
    """``model`` is the one LM field a program or event may set; an endpoint smuggled into
    it is sent to the operator's endpoint as a model name, never connected to."""
    host = attacker[0].removeprefix("http://").removesuffix("/v1")
    client = await bus.connect(CLIENT)
    try:
        for model in (f"openai/{attacker[0]}", f"openai/{host}", f"hosted_vllm/{attacker[0]}"):
            event = ExecuteRequested.create(
                ExecuteRequestedPayload(
                    program=ProgramSource(spec=_math_qa()),
                    inputs={"question": "What is 2 plus 2?"},
                    overrides={"*.model": model},
                )
            )
            await client.request(subjects.EXEC_CALL, event.model_dump_json().encode(), 60)
    finally:
        await client.close()
    assert attacker[1:] == []
