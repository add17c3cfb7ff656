"""The outside tools integration tests build on: promtool accepts what prometheus-client
exports and rejects a badly named counter; a Node.js client (npm ``nats``) publishes to and
consumes from JetStream alongside nats-py, Nats-Msg-Id de-duplication included."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from dspex_runtime.testing.fixtures import nats_server_module  # noqa: F401 - a fixture
from dspex_runtime.testing.nats import NatsServer
from dspex_runtime.testing.node import run_node
from dspex_runtime.testing.tools import (
    NODE_NATS,
    NODE_NATS_INTEGRITY,
    NODE_NATS_VERSION,
    PROMTOOL,
    ensure_node_nats,
    ensure_promtool,
    missing_reason,
    promtool_check_metrics,
    require_tool,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_tool(ensure_promtool(), PROMTOOL)


@pytest.fixture(scope="module")
def node_modules() -> Path:
    return require_tool(ensure_node_nats(), NODE_NATS)


@pytest.fixture
async def client(
    nats_server_module: NatsServer,  # noqa: F811 - the fixture imported above
) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server_module.url)
    yield client
    await client.close()


def test_promtool_accepts_what_prometheus_client_exports(promtool: str) -> None:
    registry = CollectorRegistry()
    requests = Counter("dspex_demo_requests", "Requests.", ["outcome"], registry=registry)
    requests.labels("ok").inc()
    Histogram("dspex_demo_seconds", "Latency.", registry=registry).observe(0.2)
    checked = promtool_check_metrics(promtool, generate_latest(registry))
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(
    ("exposition", "complaint"),
    [
        ("# HELP dspex_bad Bad.\n# TYPE dspex_bad counter\ndspex_bad 3\n", "_total"),
        ("dspex_broken{ 3\n", "pars"),
    ],
)
def test_promtool_rejects_bad_expositions(promtool: str, exposition: str, complaint: str) -> None:
    checked = promtool_check_metrics(promtool, exposition)
    assert checked.returncode != 0
    assert complaint in checked.stdout + checked.stderr


PUBLISH_TWICE = """
import nats from "nats";
const nc = await nats.connect({ servers: process.env.NATS_URL });
const js = nc.jetstream();
const acks = [];
for (let i = 0; i < 2; i++) {
  const h = nats.headers();
  h.set("Nats-Msg-Id", process.env.MSG_ID);
  const ack = await js.publish(process.env.SUBJECT, nats.StringCodec().encode(process.env.BODY), {
    headers: h,
  });
  acks.push({ seq: ack.seq, duplicate: ack.duplicate });
}
console.log(JSON.stringify(acks));
await nc.drain();
"""


async def test_a_node_publisher_is_deduplicated_and_read_by_nats_py(
    node_modules: Path,
    nats_server_module: NatsServer,  # noqa: F811
    client: Client,
) -> None:
    js = client.jetstream()
    await js.add_stream(name="FROM_NODE", subjects=["node.in"])
    env = {"NATS_URL": nats_server_module.url, "SUBJECT": "node.in"}
    env |= {"MSG_ID": "node-1", "BODY": '{"hello":"from node"}'}
    done = await run_node(PUBLISH_TWICE, env=env, node_modules=node_modules)
    assert done.returncode == 0, done.stderr

    assert json.loads(done.stdout) == [
        {"seq": 1, "duplicate": False},
        {"seq": 1, "duplicate": True},
    ]
    assert (await js.stream_info("FROM_NODE")).state.messages == 1
    sub = await js.pull_subscribe("node.in", durable="py")
    [msg] = await sub.fetch(1, timeout=5)
    await msg.ack()
    assert json.loads(msg.data) == {"hello": "from node"}
    assert msg.headers is not None
    assert msg.headers["Nats-Msg-Id"] == "node-1"


CONSUME_ONE = """
import nats from "nats";
const nc = await nats.connect({ servers: process.env.NATS_URL });
const consumer = await nc.jetstream().consumers.get(process.env.STREAM, process.env.DURABLE);
const msg = await consumer.next({ expires: 5000 });
if (msg === null) {
  console.error("no message");
  process.exit(2);
}
const acked = await msg.ackAck();
console.log(JSON.stringify({
  subject: msg.subject,
  body: nats.StringCodec().decode(msg.data),
  id: msg.headers ? msg.headers.get("Nats-Msg-Id") : null,
  acked,
}));
await nc.drain();
"""


async def test_a_node_consumer_reads_and_acks_what_nats_py_published(
    node_modules: Path,
    nats_server_module: NatsServer,  # noqa: F811
    client: Client,
) -> None:
    js = client.jetstream()
    await js.add_stream(name="TO_NODE", subjects=["node.out"])
    config = ConsumerConfig(durable_name="node", ack_policy=AckPolicy.EXPLICIT)
    await js.add_consumer("TO_NODE", config)
    await js.publish("node.out", b"from python", headers={"Nats-Msg-Id": "py-1"})

    env = {"NATS_URL": nats_server_module.url, "STREAM": "TO_NODE", "DURABLE": "node"}
    done = await run_node(CONSUME_ONE, env=env, node_modules=node_modules)
    assert done.returncode == 0, done.stderr

    got = json.loads(done.stdout)
    assert got == {"subject": "node.out", "body": "from python", "id": "py-1", "acked": True}
    info = await js.consumer_info("TO_NODE", "node")
    assert (info.num_ack_pending, info.num_pending) == (0, 0)
    assert info.ack_floor is not None
    assert info.ack_floor.stream_seq == 1


async def test_a_failing_node_script_reports_its_exit_code(node_modules: Path) -> None:
    done = await run_node("console.error('boom'); process.exit(3);", node_modules=node_modules)
    assert (done.returncode, done.stderr.strip()) == (3, "boom")


async def test_a_node_script_over_its_time_is_killed(node_modules: Path) -> None:
    with pytest.raises(TimeoutError, match="ran over"):
        await run_node("setInterval(() => {}, 1000);", node_modules=node_modules, timeout_s=0.5)


@pytest.mark.unit
def test_a_tampered_npm_install_is_refused_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cached install of the pinned version whose recorded integrity is not the pinned one
    # (as after a registry compromise): it must not be used, and must not stay.
    prefix = tmp_path / "node-nats" / NODE_NATS_VERSION
    (prefix / "node_modules" / "nats").mkdir(parents=True)
    manifest = {"name": "nats", "version": NODE_NATS_VERSION}
    (prefix / "node_modules" / "nats" / "package.json").write_text(json.dumps(manifest))
    packages = {f"node_modules/{name}": {"integrity": i} for name, i in NODE_NATS_INTEGRITY.items()}
    packages["node_modules/nats"] = {"integrity": "sha512-not-the-pinned-one"}
    lock = {"name": "cache", "packages": packages}
    (prefix / "node_modules" / ".package-lock.json").write_text(json.dumps(lock))
    monkeypatch.setenv("DSPEX_TOOLS_CACHE", str(tmp_path))
    ensure_node_nats.cache_clear()
    try:
        assert ensure_node_nats() is None
    finally:
        ensure_node_nats.cache_clear()
    assert "not the pinned ones" in missing_reason(NODE_NATS)
    assert not prefix.exists()


@pytest.mark.unit
@pytest.mark.parametrize("ci", ["true", ""])
def test_a_missing_tool_skips_locally_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected, match="no-such-tool"):
        require_tool(None, "no-such-tool")
    assert require_tool("/bin/tool", "no-such-tool") == "/bin/tool"
