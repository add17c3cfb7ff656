"""The run explorer in a real browser (Debian's Chromium driven by Playwright) against the
embedded stack: the run list and a run's page update live while it runs, pause and resume
work from the page with the operator's token (and not without it), and the finished run's
curve, candidates table, best-versus-baseline view and the program's version diff show
what the registry recorded. The page must load nothing from outside the machine and fit a
laptop screen. Screenshots are kept in the artefacts folder."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import pytest
from explorer_helpers import LAUNCH_ARGS, TOKEN, explorer_url
from playwright.sync_api import Browser, Page, expect, sync_playwright

from dspex_client.sdk import DSPExClient
from dspex_client.stack import Stack
from dspex_contracts import CandidateInfo, ProgramInfo, RunInfo
from dspex_kernel import ProgramSpec

pytestmark = pytest.mark.timeout(600)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "math_qa"
LAPTOP = {"width": 1366, "height": 768}
T = TypeVar("T")


def rows(name: str, n: int) -> list[dict[str, Any]]:
    lines = (EXAMPLE / name).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()][:n]


def sdk(stack: Stack, work: Callable[[DSPExClient], Awaitable[T]]) -> T:
    """Run SDK calls on a thread of their own: Playwright's sync API keeps an event loop
    running on this one."""

    async def go() -> T:
        async with DSPExClient(stack.nats_url) as client:
            return await work(client)

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def registry_run(stack: Stack, run_id: str) -> RunInfo:
    return sdk(stack, lambda c: c.get_run(run_id))


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, explorer_stack: Stack) -> Iterator[Page]:
    """A laptop-sized page that may reach the explorer only: any other request is refused
    and recorded, as it would fail without internet."""
    context = browser.new_context(viewport=LAPTOP)
    origin = urlparse(explorer_url(explorer_stack)).netloc
    outside: list[str] = []

    def guard(route: Any) -> None:
        if urlparse(route.request.url).netloc == origin:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    errors: list[str] = []
    opened = context.new_page()
    opened.on("pageerror", lambda e: errors.append(str(e)))
    yield opened
    context.close()
    assert outside == [], f"the page asked for resources outside the explorer: {outside}"
    assert errors == [], f"script errors on the page: {errors}"


def fits_laptop(page: Page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a laptop screen"


def number(page: Page, selector: str) -> int:
    return int(page.locator(selector).inner_text().strip())


def start_run(stack: Stack) -> str:
    spec = ProgramSpec.load(EXAMPLE / "program.yaml").model_dump(mode="json")
    spec["name"] = "explorer_qa"

    async def work(client: DSPExClient) -> str:
        await client.register_program(spec, source="browser test")
        return await client.start_optimization(
            "explorer_qa",
            rows("train.jsonl", 60),
            rows("dev.jsonl", 40),
            metric="numeric",
            strategy="bootstrap",
            params={"num_candidate_sets": 8},
            apply=True,
        )

    return sdk(stack, work)


def test_watch_pause_resume_and_inspect_a_run(
    page: Page, explorer_stack: Stack, artifacts: Path
) -> None:
    base = explorer_url(explorer_stack)

    # The run list is open before the run exists: the run appears without a reload.
    page.goto(f"{base}/ui/runs")
    page.evaluate("window.__notReloaded = true")
    run_id = start_run(explorer_stack)
    row = page.locator(f'tr[data-run-id="{run_id}"]')
    expect(row).to_be_visible(timeout=30_000)
    expect(row.locator(".run-status")).to_have_text("running", timeout=30_000)
    assert page.evaluate("window.__notReloaded") is True
    fits_laptop(page)
    page.screenshot(path=artifacts / "01-runs-live.png", full_page=True)

    # The run's page follows the run live: its LM calls grow without a reload.
    row.locator("a").first.click()
    expect(page.locator("#run-body")).to_have_attribute("data-run-id", run_id)
    page.evaluate("window.__notReloaded = true")
    first = number(page, "#run-lm-calls")
    deadline = time.monotonic() + 60
    while number(page, "#run-lm-calls") <= first:
        assert time.monotonic() < deadline, "the run page did not update while the run ran"
        page.wait_for_timeout(250)
    assert page.evaluate("window.__notReloaded") is True
    fits_laptop(page)
    page.screenshot(path=artifacts / "02-run-live.png", full_page=True)

    # Without the token the page may not pause the run, and says why.
    page.locator("#action-pause").click()
    expect(page.locator("#flash")).to_contain_text("token", timeout=10_000)
    assert registry_run(explorer_stack, run_id).status.value == "running"

    # With it, pause: the optimizer stops, the page and the registry say paused.
    page.locator("#token-input").fill(TOKEN)
    page.locator("#token-form button").click()
    expect(page.locator("#token-state")).to_have_text("token set")
    page.locator("#action-pause").click()
    expect(page.locator("#run-body")).to_have_attribute("data-status", "paused", timeout=60_000)
    assert registry_run(explorer_stack, run_id).status.value == "paused"
    expect(page.locator("#action-resume")).to_be_enabled()
    expect(page.locator("#action-pause")).to_be_disabled()
    page.screenshot(path=artifacts / "03-run-paused.png", full_page=True)
    # Calls already sent may still be answered; after that, nothing new is spent.
    page.wait_for_timeout(3_000)
    paused = registry_run(explorer_stack, run_id)
    page.wait_for_timeout(3_000)
    assert registry_run(explorer_stack, run_id).lm_calls == paused.lm_calls, (
        "LM calls went on while the run was paused"
    )

    # Resume from the page; the run goes on to its end, shown live.
    page.locator("#action-resume").click()
    expect(page.locator("#run-body")).not_to_have_attribute("data-status", "paused", timeout=60_000)
    expect(page.locator("#run-body")).to_have_attribute("data-status", "completed", timeout=300_000)
    assert page.evaluate("window.__notReloaded") is True

    # The finished run, opened afresh, against the registry's data.
    run = registry_run(explorer_stack, run_id)
    scored: list[CandidateInfo] = sdk(
        explorer_stack, lambda c: c.run_candidates(run_id, limit=5000)
    )
    page.goto(f"{base}/ui/runs/{run_id}")
    check_curve(page, run, scored)
    check_candidates(page, run, scored)
    check_best_beside_baseline(page, explorer_stack, run)
    fits_laptop(page)
    page.screenshot(path=artifacts / "04-run-finished.png", full_page=True)

    # The program's versions: the run registered version 2; the diff shows what changed.
    assert run.applied_version == 2
    page.goto(f"{base}/ui/programs/explorer_qa?a=1&b=2")
    check_diff(page, explorer_stack)
    fits_laptop(page)
    page.screenshot(path=artifacts / "05-program-diff.png", full_page=True)


def check_curve(page: Page, run: RunInfo, scored: list[CandidateInfo]) -> None:
    steps = page.locator("#curve circle.step")
    points = [
        (int(s.get_attribute("data-lm-calls") or -1), float(s.get_attribute("data-score") or -1))
        for s in steps.all()
    ]
    assert points, "the finished run's curve has no point"
    assert run.best_score is not None
    # The best-so-far line never falls, ends at the run's best score and its LM calls.
    scores = [score for _, score in points]
    assert scores == sorted(scores)
    assert points[-1] == (run.lm_calls, pytest.approx(run.best_score))
    assert [x for x, _ in points] == sorted(x for x, _ in points)
    # One dot per scored evaluation call, with the registry's scores.
    dots = page.locator("#curve circle.eval")
    shown = sorted(float(d.get_attribute("data-score") or -1) for d in dots.all())
    assert shown == pytest.approx(sorted(c.score for c in scored))


def check_candidates(page: Page, run: RunInfo, scored: list[CandidateInfo]) -> None:
    table = page.locator("#candidates tbody tr")
    expect(table).to_have_count(len(scored))
    assert [r.get_attribute("data-call-id") for r in table.all()] == [c.call_id for c in scored]
    # Sorting by score (a click, no reload): highest first, then lowest first.
    page.locator('#candidates th a[data-sort="score"]').click()
    expect(page.locator('#candidates th a.sorted[data-sort="score"]')).to_contain_text("▼")
    shown = [float(t) for t in page.locator("#candidates tbody td.score").all_inner_texts()]
    assert shown == sorted((round(c.score, 3) for c in scored), reverse=True)
    page.locator('#candidates th a[data-sort="score"]').click()
    expect(page.locator('#candidates th a.sorted[data-sort="score"]')).to_contain_text("▲")
    shown = [float(t) for t in page.locator("#candidates tbody td.score").all_inner_texts()]
    assert shown == sorted(round(c.score, 3) for c in scored)
    best_rows = page.locator("#candidates tbody tr.best-row")
    assert best_rows.count() >= 1
    assert run.best_candidate_id is not None
    expect(best_rows.first).to_contain_text(run.best_candidate_id)


def check_best_beside_baseline(page: Page, stack: Stack, run: RunInfo) -> None:
    assert run.program_name is not None
    assert run.best_overrides
    base: ProgramInfo = sdk(stack, lambda c: c.get_program(run.program_name or "", 1))
    baseline = ProgramSpec.from_data(base.spec)
    best = baseline.with_configuration(run.best_overrides)
    for stage in baseline.stages:
        card = page.locator(f'.stage[data-stage="{stage.name}"]')
        expect(card).to_have_count(1)
        for side, spec in (("baseline", baseline), ("best", best)):
            config = spec.configuration.stages.get(stage.name)
            defaults = spec.configuration.defaults
            instructions = (
                (config and config.instructions)
                or defaults.instructions
                or spec.signatures[stage.name].instructions
            )
            demos = (config and config.demos) or defaults.demos or []
            shown = card.locator(f'[data-side="{side}"]')
            expect(shown.locator("pre.instructions")).to_have_text(instructions or "(none)")
            expect(shown.locator("dl.demo")).to_have_count(len(demos))
    # The optimized side differs from the baseline somewhere: that is what the run found.
    assert best.configuration != baseline.configuration


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_leaves(item, f"{prefix}.{key}" if prefix else key))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, item in enumerate(value):
            out.update(_leaves(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def check_diff(page: Page, stack: Stack) -> None:
    versions: list[ProgramInfo] = sdk(stack, lambda c: c.program_versions("explorer_qa"))
    one, two = (_leaves(v.spec) for v in versions[:2])
    expected = {p for p in one.keys() | two.keys() if p != "version" and one.get(p) != two.get(p)}
    assert expected, "version 2 has the same configuration as version 1"
    shown = {r.get_attribute("data-path") for r in page.locator("#diff tbody tr").all()}
    assert shown == expected
    for path in sorted(expected)[:5]:
        row = page.locator(f'#diff tbody tr[data-path="{path}"]')
        if path in two:
            after = two[path]
            expect(row.locator("td.after")).to_have_text(
                after if isinstance(after, str) else json.dumps(after, ensure_ascii=False)
            )
