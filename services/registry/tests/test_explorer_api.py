"""The run explorer's web app in-process (httpx over ASGI) on a store of each kind, filled
through the store's own methods: the JSON API returns what the store holds, actions need
the operator's token and publish one command, the pages render the store's data in the
order asked for with assets served locally, and live changes wake the right streams."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import yaml
from pydantic import SecretStr
from registry_helpers import EXAMPLE, completed, eventually, progress, requested, spec_data

from dspex_contracts import (
    CancelRun,
    Envelope,
    PauseRun,
    ResumeRun,
    RunStatus,
)
from dspex_registry.adapters.memory import InMemoryRegistryStore
from dspex_registry.domain import CandidateRecord, RegistryStore
from dspex_registry.explorer import views
from dspex_registry.explorer.live import RunChanges, decode_notice
from dspex_registry.explorer.web import Explorer, create_explorer

pytestmark = pytest.mark.integration

STATIC = Path(views.__file__).parent / "static"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TOKEN = "operator-s3cret"
RUNNING, PAUSED, DONE, INLINE = "api-running", "api-paused", "api-done", "api-inline"
DEMOS = [{"question": "What is 1 + 1?", "answer": 2}]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def math_qa() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((EXAMPLE / "program.yaml").read_text())
    return data


def call(
    n: int, score: float, candidate: str, examples: int, calls: int, latency: float | None
) -> CandidateRecord:
    return CandidateRecord(
        call_id=f"{RUNNING}:{n}",
        run_id=RUNNING,
        candidate_id=candidate,
        score=score,
        examples=examples,
        created_at=at(10 + n),
        lm_calls=calls,
        cost_usd=0.001 * calls,
        latency_s=latency,
    )


async def fill(store: RegistryStore) -> None:
    """Two programs (one with two versions) and four runs in different states."""
    await store.add_program("qa", spec_data(), origin="p1", at=at(0), registered_by="ann")
    second = spec_data(instructions="Think, then answer.")
    second["configuration"] = {"stages": {"solve": {"demos": DEMOS, "temperature": 0.3}}}
    await store.add_program("qa", second, origin="p2", at=at(1), run_id=DONE, score=0.8)
    await store.add_program("math_qa", math_qa(), origin="p3", at=at(2), source="program.yaml")

    await store.record_requested(requested(RUNNING).payload, at(3))
    for n, (score, calls) in enumerate([(0.4, 10), (0.6, 30), (0.6, 50)], start=1):
        report = progress(
            RUNNING, best_score=score, evaluations=n, lm_calls=calls, cost_usd=calls / 1000
        )
        await store.record_progress(report.payload, at(10 + 2 * n))
    rows = [
        call(1, 0.4, "c2", 3, 6, 0.3),
        call(2, 0.6, "c1", 5, 2, None),
        call(3, 0.2, "c3", 1, 9, 0.1),
        call(4, 0.6, "c1", 4, 2, 0.2),
        call(5, 0.5, "c0", 2, 4, 0.25),
    ]
    for row in rows:
        assert await store.add_candidate(row)

    await store.record_progress(progress(PAUSED, RunStatus.PAUSED, evaluations=2).payload, at(4))

    await store.record_requested(requested(DONE).payload, at(5))
    overrides = {"solve.instructions": "Answer with a number only."}
    await store.record_completed(completed(DONE, overrides=overrides).payload, at(20))

    await store.record_requested(requested(INLINE, inline=math_qa()).payload, at(6))
    done = completed(INLINE, "math_qa", overrides={"demos": DEMOS, "model": "openai/sim-large"})
    await store.record_completed(done.payload, at(30))


@dataclass
class Site:
    client: httpx.AsyncClient
    store: RegistryStore
    changes: RunChanges
    published: list[Envelope[Any]] = field(default_factory=list)
    stopping: list[bool] = field(default_factory=lambda: [False])

    async def json(self, path: str) -> Any:
        response = await self.client.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    async def page(self, path: str) -> Page:
        response = await self.client.get(path)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/html")
        return Page.parse(response.text)


Open = Callable[..., Any]


@pytest.fixture
async def filled(store: RegistryStore) -> RegistryStore:
    await fill(store)
    return store


@asynccontextmanager
async def explorer_client(
    store: RegistryStore,
    *,
    token: str | None = None,
    publish: Callable[[Envelope[Any]], Any] | None = None,
    changes: RunChanges | None = None,
    stopping: Callable[[], bool] = lambda: True,
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the explorer over ``store``, in-process; by default read-only
    and publishing nothing."""
    app = create_explorer(
        Explorer(
            store=lambda: store,
            publish=publish or nothing,
            changes=changes or RunChanges(),
            token=SecretStr(token) if token is not None else None,
            stopping=stopping,
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://explorer") as client:
        yield client


@pytest.fixture
def open_site(filled: RegistryStore) -> Open:
    @asynccontextmanager
    async def opened(token: str | None = TOKEN) -> AsyncIterator[Site]:
        changes = RunChanges(min_interval_s=0.01)
        published: list[Envelope[Any]] = []
        stopping = [False]

        async def publish(event: Envelope[Any]) -> None:
            published.append(event)

        async with explorer_client(
            filled, token=token, publish=publish, changes=changes, stopping=lambda: stopping[0]
        ) as client:
            yield Site(client, filled, changes, published, stopping)

    return opened


@pytest.fixture
async def site(open_site: Open) -> AsyncIterator[Site]:
    async with open_site() as opened:
        yield opened


def matches(found: dict[str, Any], record: Any) -> None:
    """Every field of an API object equals the record's field of that name."""
    assert found, "an empty object matches nothing"
    for key, value in found.items():
        expected = getattr(record, key)
        if isinstance(expected, datetime):
            value = datetime.fromisoformat(value)
        if isinstance(expected, Enum):
            expected = expected.value
        assert value == expected, f"{key}: {value!r} != {expected!r}"


# -- the JSON API ---------------------------------------------------------------------------


async def test_programs_and_versions_are_the_stores(site: Site) -> None:
    found = await site.json("/api/programs")
    summaries = await site.store.list_programs()
    assert [p["name"] for p in found] == ["math_qa", "qa"]
    assert len(found) == len(summaries)
    for item, summary in zip(found, summaries, strict=True):
        matches(item, summary)
    assert found[1]["latest_version"] == 2
    versions = await site.json("/api/programs/qa/versions")
    stored = await site.store.program_versions("qa")
    assert [v["version"] for v in versions] == [1, 2]
    for item, version in zip(versions, stored, strict=True):
        matches(item, version)
    assert versions[1]["spec"]["configuration"]["stages"]["solve"]["demos"] == DEMOS
    assert (versions[0]["registered_by"], versions[1]["run_id"]) == ("ann", DONE)


async def test_the_diff_endpoint_is_config_diff_of_the_two_versions(site: Site) -> None:
    one, two = await site.store.program_versions("qa")
    expected = [asdict(row) for row in views.config_diff(one.spec, two.spec)]
    found = await site.json("/api/programs/qa/diff?a=1&b=2")
    assert found == expected
    paths = {row["path"]: row["kind"] for row in found}
    assert paths["stages[0].signature.instructions"] == "changed"
    assert paths["configuration.stages.solve.temperature"] == "added"
    assert "version" not in paths
    backwards = await site.json("/api/programs/qa/diff?a=2&b=1")
    assert {row["kind"] for row in backwards if row["path"].startswith("configuration")} == {
        "removed"
    }
    assert await site.json("/api/programs/qa/diff?a=2&b=2") == []


async def test_runs_are_the_stores_newest_first_and_filtered(site: Site) -> None:
    found = await site.json("/api/runs")
    stored = await site.store.list_runs(limit=100)
    assert [r["run_id"] for r in found] == [INLINE, DONE, PAUSED, RUNNING]
    for item, run in zip(found, stored, strict=True):
        matches(item, run)
    done = await site.json("/api/runs?status=completed")
    assert [r["run_id"] for r in done] == [INLINE, DONE]
    assert [r["run_id"] for r in await site.json("/api/runs?program=qa")] == [DONE, RUNNING]
    assert [r["run_id"] for r in await site.json("/api/runs?limit=1")] == [INLINE]
    assert (await site.client.get("/api/runs?limit=0")).status_code == 422
    assert (await site.client.get("/api/runs?status=bogus")).status_code == 422


async def test_a_run_view_has_its_record_history_and_candidates(site: Site) -> None:
    view = await site.json(f"/api/runs/{RUNNING}")
    run = await site.store.get_run(RUNNING)
    assert run is not None
    matches(view["run"], run)
    assert (view["run"]["status"], view["run"]["lm_calls"]) == ("running", 50)
    history = await site.store.run_history(RUNNING)
    assert [p["lm_calls"] for p in view["history"]] == [10, 30, 50]
    for item, point in zip(view["history"], history, strict=True):
        matches(item, point)
    candidates = await site.store.run_candidates(RUNNING)
    assert [c["call_id"] for c in view["candidates"]] == [f"{RUNNING}:{n}" for n in range(1, 6)]
    for item, candidate in zip(view["candidates"], candidates, strict=True):
        matches(item, candidate)


async def test_the_comparison_is_compare_best_of_the_run(site: Site) -> None:
    done = await site.store.get_run(DONE)
    one = await site.store.get_program("qa", 1)
    assert done is not None
    assert one is not None
    assert done.best_overrides is not None
    expected = [asdict(c) for c in views.compare_best(one.spec, done.best_overrides)]
    found = await site.json(f"/api/runs/{DONE}/comparison")
    assert found == expected
    assert found[0]["best"]["instructions"] == "Answer with a number only."
    # An inline program is compared with itself as sent, not with a registered version.
    [inline] = await site.json(f"/api/runs/{INLINE}/comparison")
    assert (inline["baseline"]["demos"], inline["best"]["demos"]) == ([], DEMOS)
    assert inline["best"]["settings"]["model"] == "openai/sim-large"
    # No completion yet: nothing to compare.
    assert await site.json(f"/api/runs/{RUNNING}/comparison") == []


NOT_FOUND = {
    "/api/runs/nope": "no run 'nope' is recorded",
    "/api/runs/nope/comparison": "no run 'nope' is recorded",
    "/api/programs/nope/versions": "no program named 'nope' is registered",
    "/api/programs/nope/diff?a=1&b=2": "no program named 'nope' is registered",
    "/api/programs/qa/diff?a=1&b=9": "program 'qa' has no version 9",
    "/ui/runs/nope": "no run 'nope' is recorded",
    "/ui/runs/nope/body": "no run 'nope' is recorded",
    "/ui/programs/nope": "no program named 'nope' is registered",
    "/ui/programs/qa?a=7": "program 'qa' has no version 7",
}


async def test_unknown_things_are_404_with_a_clear_message(site: Site) -> None:
    for path, detail in NOT_FOUND.items():
        response = await site.client.get(path)
        assert (response.status_code, response.json()) == (404, {"detail": detail}), path


# -- actions --------------------------------------------------------------------------------


async def test_without_a_configured_token_actions_are_forbidden(open_site: Open) -> None:
    async with open_site(token=None) as site:
        for header in ({}, {"Authorization": f"Bearer {TOKEN}"}):
            response = await site.client.post(f"/api/runs/{RUNNING}/pause", headers=header)
            assert response.status_code == 403
            assert "DSPEX_UI_TOKEN" in response.json()["detail"]
        assert site.published == []


async def test_a_missing_or_wrong_token_is_401(site: Site) -> None:
    for header in [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer", TOKEN]:
        headers = {"Authorization": header} if header is not None else {}
        response = await site.client.post(f"/api/runs/{RUNNING}/cancel", headers=headers)
        assert response.status_code == 401, header
        assert response.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer <token>" in response.json()["detail"]
    assert site.published == []


@pytest.mark.parametrize(
    ("run_id", "action", "kind"),
    [
        (RUNNING, "pause", PauseRun),
        (PAUSED, "resume", ResumeRun),
        (RUNNING, "cancel", CancelRun),
        (PAUSED, "cancel", CancelRun),
    ],
)
async def test_an_action_with_the_token_publishes_one_command(
    site: Site, run_id: str, action: str, kind: type[Envelope[Any]]
) -> None:
    response = await site.client.post(
        f"/api/runs/{run_id}/{action}", headers={"Authorization": f"bearer  {TOKEN} "}
    )
    assert response.status_code == 200, response.text
    [event] = site.published
    assert type(event) is kind
    assert event.payload.run_id == run_id
    assert event.payload.requested_by == "run-explorer"
    assert response.json() == {"run_id": run_id, "action": action, "event_id": event.id}


async def test_an_action_the_status_does_not_allow_is_409(site: Site) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    refused = [
        (DONE, "pause", "completed"),
        (DONE, "resume", "completed"),
        (DONE, "cancel", "completed"),
        (RUNNING, "resume", "running"),
        (PAUSED, "pause", "paused"),
    ]
    for run_id, action, status in refused:
        response = await site.client.post(f"/api/runs/{run_id}/{action}", headers=auth)
        assert response.status_code == 409, (run_id, action)
        assert response.json() == {"detail": f"cannot {action} run {run_id}: it is {status}"}
    assert site.published == []


async def test_an_action_on_an_unknown_run_or_an_unknown_action(site: Site) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    missing = await site.client.post("/api/runs/nope/pause", headers=auth)
    assert (missing.status_code, missing.json()) == (404, {"detail": "no run 'nope' is recorded"})
    unknown = await site.client.post(f"/api/runs/{RUNNING}/delete", headers=auth)
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["path", "action"]
    assert site.published == []


# -- pages ----------------------------------------------------------------------------------


@dataclass
class Page:
    """The start tags of an HTML page, in document order."""

    tags: list[tuple[str, dict[str, str]]]
    text: str

    @classmethod
    def parse(cls, html: str) -> Page:
        tags: list[tuple[str, dict[str, str]]] = []

        class Collect(HTMLParser):
            def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
                tags.append((tag, {k: v or "" for k, v in attrs}))

        parser = Collect()
        parser.feed(html)
        parser.close()
        return cls(tags, html)

    @property
    def ids(self) -> set[str]:
        return {a["id"] for _, a in self.tags if "id" in a}

    def values(self, tag: str, attr: str) -> list[str]:
        return [a[attr] for t, a in self.tags if t == tag and attr in a]

    def with_class(self, tag: str, css: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag and css in a.get("class", "").split()]

    def assets(self) -> list[str]:
        found = [a.get("src", "") for t, a in self.tags if t in ("script", "img")]
        found += [a.get("href", "") for t, a in self.tags if t == "link"]
        return [url for url in found if url]


async def test_the_runs_page_lists_the_stores_runs(site: Site) -> None:
    page = await site.page("/ui/runs")
    assert {"runs", "runs-table"} <= page.ids
    stored = [r.run_id for r in await site.store.list_runs(limit=200)]
    assert page.values("tr", "data-run-id") == stored == [INLINE, DONE, PAUSED, RUNNING]
    fragment = Page.parse((await site.client.get("/ui/runs-table")).text)
    assert fragment.values("tr", "data-run-id") == stored
    for path in ("/", "/ui"):
        moved = await site.client.get(path)
        assert (moved.status_code, moved.headers["location"]) == (307, "/ui/runs")


async def test_the_runs_page_of_an_empty_registry() -> None:
    async with explorer_client(InMemoryRegistryStore()) as client:
        runs = await client.get("/ui/runs")
        programs = await client.get("/ui/programs")
    assert runs.status_code == 200
    assert "No run is recorded yet" in runs.text
    assert "runs" not in Page.parse(runs.text).ids
    assert programs.status_code == 200
    assert "No program is registered yet" in programs.text


async def test_a_run_page_shows_its_body_curve_and_candidates(site: Site) -> None:
    page = await site.page(f"/ui/runs/{RUNNING}")
    assert {"run-body", "curve", "candidates", "budget"} <= page.ids
    assert page.values("div", "data-run-id") == [RUNNING]
    history = await site.store.run_history(RUNNING)
    scored = await site.store.run_candidates(RUNNING)
    drawn = views.curve(history, scored, None)
    steps = [
        (int(a["data-lm-calls"]), float(a["data-score"])) for a in page.with_class("circle", "step")
    ]
    assert steps == [(p.lm_calls, p.score) for p in drawn.best] == [(10, 0.4), (30, 0.6), (50, 0.6)]
    dots = page.with_class("circle", "eval")
    assert len(dots) == len(scored) == 5
    buttons = {a["id"]: "disabled" in a for t, a in page.tags if t == "button" and "id" in a}
    assert buttons == {"action-pause": False, "action-resume": True, "action-cancel": False}
    body = await site.client.get(f"/ui/runs/{RUNNING}/body")
    assert body.status_code == 200
    assert "<html" not in body.text
    assert "run-body" in Page.parse(body.text).ids


async def test_candidates_are_sorted_by_the_column_asked_for(site: Site) -> None:
    scored = await site.store.run_candidates(RUNNING)
    for column in views.CANDIDATE_COLUMNS:
        for order in ("asc", "desc"):
            expected = [c.call_id for c in views.sort_candidates(scored, column, order == "desc")]
            for path in (f"/ui/runs/{RUNNING}", f"/ui/runs/{RUNNING}/body"):
                page = await site.page(f"{path}?sort={column}&order={order}")
                assert page.values("tr", "data-call-id") == expected, (path, column, order)
                [sorted_header] = page.with_class("a", "sorted")
                assert sorted_header["data-sort"] == column


async def test_candidate_order_is_really_by_the_column(site: Site) -> None:
    page = await site.page(f"/ui/runs/{RUNNING}?sort=score&order=desc")
    numbers = [int(c.rsplit(":", 1)[1]) for c in page.values("tr", "data-call-id")]
    assert numbers == [2, 4, 5, 1, 3]  # 0.6, 0.6 (in the order scored), 0.5, 0.4, 0.2
    page = await site.page(f"/ui/runs/{RUNNING}?sort=latency_s&order=desc")
    numbers = [int(c.rsplit(":", 1)[1]) for c in page.values("tr", "data-call-id")]
    assert numbers == [1, 5, 4, 3, 2]  # no latency: last
    bad = await site.client.get(f"/ui/runs/{RUNNING}?sort=cost_usd")
    assert bad.status_code == 422
    assert (await site.client.get(f"/ui/runs/{RUNNING}?order=up")).status_code == 422


async def test_a_finished_run_page_compares_best_and_baseline(site: Site) -> None:
    page = await site.page(f"/ui/runs/{DONE}")
    assert page.values("div", "data-stage") == ["solve"]
    assert page.values("div", "data-side") == ["baseline", "best"]
    assert "Answer with a number only." in page.text
    buttons = [a for t, a in page.tags if t == "button" and a.get("id", "").startswith("action")]
    assert len(buttons) == 3
    assert all("disabled" in b for b in buttons)


async def test_the_programs_pages(site: Site) -> None:
    page = await site.page("/ui/programs")
    assert "programs" in page.ids
    assert page.values("tr", "data-program") == ["math_qa", "qa"]
    one, two = await site.store.program_versions("qa")
    expected = views.config_diff(one.spec, two.spec)
    for path in ("/ui/programs/qa?a=1&b=2", "/ui/programs/qa"):
        program = await site.page(path)
        assert {"versions", "diff", "diff-a", "diff-b"} <= program.ids
        assert program.values("tr", "data-version") == ["2", "1"]
        assert program.values("tr", "data-path") == [r.path for r in expected]
        assert program.values("tr", "data-kind") == [r.kind for r in expected]
        [table] = [a for t, a in program.tags if a.get("id") == "diff"]
        assert (table["data-a"], table["data-b"]) == ("1", "2")
    same = await site.page("/ui/programs/qa?a=2&b=2")
    assert "diff" in same.ids
    assert same.values("tr", "data-path") == []
    assert "v2 and v2 have the same configuration." in same.text


def third_party_digests() -> dict[str, str]:
    found = {}
    for line in (STATIC / "THIRD_PARTY.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"[0-9a-f]{64}", cells[4]):
            found[cells[0]] = cells[4]
    return found


async def test_the_vendored_scripts_are_served_unchanged(site: Site) -> None:
    digests = third_party_digests()
    assert set(digests) == {"htmx.min.js", "htmx-ext-sse.min.js"}
    for name, digest in digests.items():
        response = await site.client.get(f"/static/{name}")
        assert response.status_code == 200
        assert "javascript" in response.headers["content-type"]
        assert hashlib.sha256(response.content).hexdigest() == digest, name
    for name in ("explorer.css", "explorer.js"):
        response = await site.client.get(f"/static/{name}")
        assert response.status_code == 200
        assert response.content == (STATIC / name).read_bytes()
    assert (await site.client.get("/static/nope.js")).status_code == 404


PAGES = [
    "/ui/runs",
    f"/ui/runs/{RUNNING}",
    f"/ui/runs/{DONE}",
    f"/ui/runs/{INLINE}",
    "/ui/programs",
    "/ui/programs/qa?a=1&b=2",
    "/ui/programs/math_qa",
]
EXTERNAL = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)


async def test_no_page_loads_anything_from_elsewhere(site: Site) -> None:
    for path in PAGES:
        page = await site.page(path)
        assets = page.assets()
        assert "/static/htmx.min.js" in assets, path
        assert [url for url in assets if EXTERNAL.match(url)] == [], path
        for url in assets:
            if not url.startswith("data:"):
                assert (await site.client.get(url)).status_code == 200, (path, url)


async def test_the_api_is_described_without_a_page_that_needs_the_internet(site: Site) -> None:
    # FastAPI's Swagger UI loads its script from a CDN: the explorer serves the OpenAPI
    # document itself instead, and every page links to it.
    assert (await site.client.get("/api/docs")).status_code == 404
    for path in PAGES:
        assert 'href="/api/openapi.json"' in (await site.client.get(path)).text, path


async def test_the_openapi_document_lists_the_api(site: Site) -> None:
    spec = await site.json("/api/openapi.json")
    assert {
        "/api/programs",
        "/api/programs/{name}/versions",
        "/api/programs/{name}/diff",
        "/api/runs",
        "/api/runs/{run_id}",
        "/api/runs/{run_id}/comparison",
        "/api/runs/{run_id}/{action}",
        "/api/events",
    } <= set(spec["paths"])
    assert not any(p.startswith("/ui") for p in spec["paths"])


# -- live changes ---------------------------------------------------------------------------


def listen(
    changes: RunChanges, run_id: str | None, stopping: Callable[[], bool] = lambda: False
) -> AsyncGenerator[list[str], None]:
    # stream() is an async generator (typed as an iterator): closed here with aclose().
    return cast(AsyncGenerator[list[str], None], changes.stream(run_id, stopping=stopping))


async def pending(task: asyncio.Task[Any], seconds: float = 0.1) -> bool:
    await asyncio.sleep(seconds)
    return not task.done()


async def test_a_change_wakes_the_streams_of_that_run_only() -> None:
    changes = RunChanges(min_interval_s=0.01)
    mine, other, every = listen(changes, "r1"), listen(changes, "r2"), listen(changes, None)
    waits = [asyncio.ensure_future(anext(s)) for s in (mine, other, every)]
    await asyncio.sleep(0.05)  # each stream has registered its listener
    assert len(changes.listeners) == 3
    changes.heard("r1")
    assert await asyncio.wait_for(waits[0], 2) == ["r1"]
    assert await asyncio.wait_for(waits[2], 2) == ["r1"]
    assert await pending(waits[1])
    changes.heard("r2")
    assert await asyncio.wait_for(waits[1], 2) == ["r2"]
    for stream in (mine, other, every):
        await stream.aclose()
    assert changes.listeners == set()


async def test_changes_heard_during_the_interval_come_as_one() -> None:
    changes = RunChanges(min_interval_s=0.3)
    stream = listen(changes, None)
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    changes.heard("b")
    assert await asyncio.wait_for(first, 2) == ["b"]
    woke = loop.time()
    for run_id in ("c", "a", "c", "b"):
        changes.heard(run_id)
    second = asyncio.ensure_future(anext(stream))
    assert await pending(second, 0.15)  # held back until the interval has passed
    assert await asyncio.wait_for(second, 2) == ["a", "b", "c"]
    assert loop.time() - woke >= 0.3
    third = asyncio.ensure_future(anext(stream))
    assert await pending(third, 0.4)  # nothing more was heard: nothing more is said
    third.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await third
    await stream.aclose()
    assert changes.listeners == set()


async def test_a_stream_ends_when_the_service_stops() -> None:
    changes = RunChanges(min_interval_s=0.01)
    assert [c async for c in listen(changes, "r1", lambda: True)] == []
    assert changes.listeners == set()


async def test_the_events_endpoint_sends_changed_events(site: Site) -> None:
    async def announce() -> None:
        await eventually(lambda: site.changes.listeners, "the stream to listen", 10)
        site.changes.heard("other")
        site.changes.heard(RUNNING)
        site.stopping[0] = True  # the stream ends after its next event

    task = asyncio.create_task(announce())
    response = await asyncio.wait_for(site.client.get(f"/api/events?run_id={RUNNING}"), 10)
    await task
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e for e in re.split(r"\r?\n\r?\n", response.text) if e.strip()]
    assert len(events) == 1
    fields = dict(line.split(": ", 1) for line in events[0].splitlines())
    assert fields == {"event": "changed", "data": RUNNING}


@pytest.mark.parametrize(
    ("body", "run_id"),
    [
        (b"r1", "r1"),
        (b" run-7\n", "run-7"),
        (b"", None),
        (b"two words", None),
        (b"\xff\xfe", None),
        (b"x" * 129, None),
        (b"x" * 128, "x" * 128),
    ],
)
def test_decode_notice(body: bytes, run_id: str | None) -> None:
    assert decode_notice(body) == run_id


async def nothing(event: Envelope[Any]) -> None:
    raise AssertionError("nothing may be published")


# -- text from LMs and users is shown, never run --------------------------------------------

HOSTILE = '<script>window.owned = 1</script><img src=x onerror="window.owned = 2">'


async def test_instructions_and_demos_are_escaped_on_every_page(store: RegistryStore) -> None:
    """Instructions and demos are written by LMs and users: the pages show them as text."""
    one = spec_data()
    two = spec_data(instructions=HOSTILE)
    two["configuration"] = {"stages": {"solve": {"demos": [{"question": HOSTILE, "answer": 1}]}}}
    await store.add_program("qa", one, origin="x1", at=at(0))
    await store.add_program("qa", two, origin="x2", at=at(1))
    await store.record_requested(requested("xss").payload, at(2))
    overrides = {"solve.instructions": HOSTILE, "solve.demos": [{"question": HOSTILE, "answer": 1}]}
    await store.record_completed(completed("xss", overrides=overrides).payload, at(3))

    async with explorer_client(store) as client:
        for path in ("/ui/runs/xss", "/ui/programs/qa?a=1&b=2"):
            text = (await client.get(path)).text
            assert "<script>window.owned" not in text, path
            assert "<img src=x" not in text, path
            assert "&lt;script&gt;window.owned = 1&lt;/script&gt;" in text, path
