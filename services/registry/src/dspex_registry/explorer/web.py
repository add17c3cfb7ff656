"""The run explorer: an HTTP API on the registry's data (``/api``, described by
``/api/openapi.json``) and pages on top of it (``/ui``), served on the registry's HTTP port. Pages
are rendered on the server and refreshed in place with htmx, woken by server-sent events;
every asset is packaged with the service, so the page needs no internet. Reading is open;
pausing, resuming and cancelling a run need the operator's token.

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations,
which name types local to :func:`create_explorer`."""

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, SecretStr
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import AppStatus

from dspex_contracts import (
    CancelRun,
    CancelRunPayload,
    CandidateInfo,
    Envelope,
    PauseRun,
    PauseRunPayload,
    ProgramInfo,
    ProgramSummary,
    ResumeRun,
    ResumeRunPayload,
    RunInfo,
    RunStatus,
)

from ..domain import CandidateRecord, ProgramVersion, ProgressPoint, RegistryStore, RunRecord
from . import views
from .live import RunChanges

HERE = Path(__file__).parent
Action = Literal["pause", "resume", "cancel"]
# Which statuses each action makes sense in; others get 409 with the reason.
ALLOWED: dict[str, frozenset[RunStatus]] = {
    "pause": frozenset({RunStatus.QUEUED, RunStatus.RUNNING}),
    "resume": frozenset({RunStatus.PAUSED}),
    "cancel": frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED}),
}
ACTOR = "run-explorer"


@dataclass
class Explorer:
    """What the explorer needs from its service."""

    store: Callable[[], RegistryStore]
    publish: Callable[[Envelope[Any]], Awaitable[None]]
    changes: RunChanges
    token: SecretStr | None
    stopping: Callable[[], bool]


class HistoryPoint(BaseModel):
    status: RunStatus
    evaluations: int
    lm_calls: int
    best_score: float | None
    cost_usd: float
    at: str


class RunView(BaseModel):
    run: RunInfo
    history: list[HistoryPoint]
    candidates: list[CandidateInfo]


class DiffEntry(BaseModel):
    path: str
    kind: str
    before: str | None
    after: str | None


class StageSideOut(BaseModel):
    instructions: str | None
    demos: list[dict[str, Any]]
    settings: dict[str, Any]


class StageComparisonOut(BaseModel):
    stage: str
    baseline: StageSideOut
    best: StageSideOut


class ActionDone(BaseModel):
    run_id: str
    action: str
    event_id: str


def create_explorer(explorer: Explorer) -> FastAPI:
    app = FastAPI(
        title="DSPEx run explorer",
        description="Programs, runs and candidates as the registry recorded them; pause, "
        "resume and cancel runs with the operator's token.",
        # FastAPI's Swagger UI and ReDoc load their scripts from a CDN: the OpenAPI document
        # alone is served, so that nothing the explorer links to needs the internet.
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    # Streams end when ``explorer.stopping()`` says so (checked every second). sse-starlette's
    # own shutdown detection looks for any uvicorn server of the process through the SIGTERM
    # handler; one left behind by an earlier server would close every new stream at once.
    AppStatus.enable_automatic_graceful_drain = False
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals["token_required"] = explorer.token is not None
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def store() -> RegistryStore:
        return explorer.store()

    Store = Annotated[RegistryStore, Depends(store)]

    async def the_run(run_id: str, s: RegistryStore) -> RunRecord:
        run = await s.get_run(run_id)
        if run is None:
            raise HTTPException(404, f"no run {run_id!r} is recorded")
        return run

    async def recorded(
        run_id: str, s: RegistryStore
    ) -> tuple[RunRecord, list[ProgressPoint], list[CandidateRecord]]:
        """The run, its progress history and its scored calls: what a run page shows."""
        run = await the_run(run_id, s)
        return run, await s.run_history(run_id), await s.run_candidates(run_id, limit=5000)

    async def baseline_spec(run: RunRecord, s: RegistryStore) -> dict[str, Any] | None:
        if run.inline_spec is not None:
            return run.inline_spec
        if run.program_name is None:
            return None
        found = await s.get_program(run.program_name, run.program_version)
        return found.spec if found is not None else None

    async def comparison(run: RunRecord, s: RegistryStore) -> list[views.StageComparison]:
        base = await baseline_spec(run, s)
        if base is None or not run.best_overrides:
            return []
        try:
            return views.compare_best(base, run.best_overrides)
        except ValueError as e:
            raise HTTPException(422, f"run {run.run_id}: {e}") from e

    async def versions_of(name: str, s: RegistryStore) -> list[ProgramVersion]:
        found = await s.program_versions(name)
        if not found:
            raise HTTPException(404, f"no program named {name!r} is registered")
        return found

    def pick(found: list[ProgramVersion], number: int) -> ProgramVersion:
        for v in found:
            if v.version == number:
                return v
        raise HTTPException(404, f"program {found[0].name!r} has no version {number}")

    # -- the API ------------------------------------------------------------------------

    @app.get("/api/programs", response_model=list[ProgramSummary], tags=["programs"])
    async def api_programs(s: Store) -> list[ProgramSummary]:
        return [ProgramSummary.model_validate(asdict(p)) for p in await s.list_programs()]

    @app.get("/api/programs/{name}/versions", response_model=list[ProgramInfo], tags=["programs"])
    async def api_versions(name: str, s: Store) -> list[ProgramInfo]:
        return [ProgramInfo.model_validate(asdict(v)) for v in await versions_of(name, s)]

    @app.get("/api/programs/{name}/diff", response_model=list[DiffEntry], tags=["programs"])
    async def api_diff(
        name: str, s: Store, a: Annotated[int, Query(ge=1)], b: Annotated[int, Query(ge=1)]
    ) -> list[DiffEntry]:
        found = await versions_of(name, s)
        rows = views.config_diff(pick(found, a).spec, pick(found, b).spec)
        return [DiffEntry.model_validate(asdict(r)) for r in rows]

    @app.get("/api/runs", response_model=list[RunInfo], tags=["runs"])
    async def api_runs(
        s: Store,
        status: RunStatus | None = None,
        program: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[RunInfo]:
        found = await s.list_runs(status=status, program=program, limit=limit)
        return [RunInfo.model_validate(asdict(r)) for r in found]

    @app.get("/api/runs/{run_id}", response_model=RunView, tags=["runs"])
    async def api_run(run_id: str, s: Store) -> RunView:
        run, history, scored = await recorded(run_id, s)
        return RunView(
            run=RunInfo.model_validate(asdict(run)),
            history=[
                HistoryPoint(
                    status=p.status,
                    evaluations=p.evaluations,
                    lm_calls=p.lm_calls,
                    best_score=p.best_score,
                    cost_usd=p.cost_usd,
                    at=p.at.isoformat(),
                )
                for p in history
            ],
            candidates=[CandidateInfo.model_validate(asdict(c)) for c in scored],
        )

    @app.get(
        "/api/runs/{run_id}/comparison",
        response_model=list[StageComparisonOut],
        tags=["runs"],
    )
    async def api_comparison(run_id: str, s: Store) -> list[StageComparisonOut]:
        found = await comparison(await the_run(run_id, s), s)
        return [StageComparisonOut.model_validate(asdict(c)) for c in found]

    def authorize(request: Request) -> None:
        if explorer.token is None:
            raise HTTPException(
                403, "the explorer is read-only: the operator set no token (DSPEX_UI_TOKEN)"
            )
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        expected = explorer.token.get_secret_value()
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            value.strip().encode(), expected.encode()
        ):
            raise HTTPException(
                401,
                "this action needs the operator's token (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    @app.post(
        "/api/runs/{run_id}/{action}",
        response_model=ActionDone,
        tags=["runs"],
        dependencies=[Depends(authorize)],
    )
    async def api_action(run_id: str, action: Action, s: Store) -> ActionDone:
        run = await the_run(run_id, s)
        if run.status not in ALLOWED[action]:
            raise HTTPException(409, f"cannot {action} run {run_id}: it is {run.status.value}")
        reason = "from the run explorer"
        event: Envelope[Any]
        if action == "pause":
            event = PauseRun.create(
                PauseRunPayload(run_id=run_id, reason=reason, requested_by=ACTOR)
            )
        elif action == "resume":
            event = ResumeRun.create(
                ResumeRunPayload(run_id=run_id, reason=reason, requested_by=ACTOR)
            )
        else:
            event = CancelRun.create(
                CancelRunPayload(run_id=run_id, reason=reason, requested_by=ACTOR)
            )
        await explorer.publish(event)
        return ActionDone(run_id=run_id, action=action, event_id=event.id)

    @app.get("/api/events", tags=["live"])
    async def api_events(run_id: str | None = None) -> EventSourceResponse:
        """Server-sent events: ``changed`` (data: the run ids) whenever the registry records
        a change to the given run, or to any run when none is given."""

        async def events() -> Any:
            async for changed in explorer.changes.stream(run_id, stopping=explorer.stopping):
                yield ServerSentEvent(data=" ".join(changed), event="changed")

        return EventSourceResponse(events(), ping=15)

    # -- the pages ----------------------------------------------------------------------

    def page(request: Request, template: str, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, template, context)

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        return RedirectResponse("/ui/runs")

    @app.get("/ui", include_in_schema=False)
    async def ui_home() -> Response:
        return RedirectResponse("/ui/runs")

    @app.get("/ui/runs", include_in_schema=False)
    async def ui_runs(request: Request, s: Store) -> HTMLResponse:
        found = await s.list_runs(limit=200)
        return page(request, "runs.html", runs=found, nav="runs")

    @app.get("/ui/runs-table", include_in_schema=False)
    async def ui_runs_table(request: Request, s: Store) -> HTMLResponse:
        found = await s.list_runs(limit=200)
        return page(request, "_runs_table.html", runs=found)

    async def run_context(run_id: str, s: RegistryStore, sort: str, order: str) -> dict[str, Any]:
        if sort not in views.CANDIDATE_COLUMNS:
            raise HTTPException(422, f"cannot sort by {sort!r}")
        run, history, scored = await recorded(run_id, s)
        drawn = views.plot(views.curve(history, scored, run.baseline_score))
        return {
            "run": run,
            "plot": drawn,
            "candidates": views.sort_candidates(scored, sort, order == "desc"),
            "sort": sort,
            "order": order,
            "budget": views.budget_used(run),
            "stages": await comparison(run, s),
            "actions": {a for a, allowed in ALLOWED.items() if run.status in allowed},
        }

    Sort = Annotated[str, Query()]
    Order = Annotated[Literal["asc", "desc"], Query()]

    @app.get("/ui/runs/{run_id}", include_in_schema=False)
    async def ui_run(
        request: Request, run_id: str, s: Store, sort: Sort = "created_at", order: Order = "asc"
    ) -> HTMLResponse:
        context = await run_context(run_id, s, sort, order)
        return page(request, "run.html", nav="runs", **context)

    @app.get("/ui/runs/{run_id}/body", include_in_schema=False)
    async def ui_run_body(
        request: Request, run_id: str, s: Store, sort: Sort = "created_at", order: Order = "asc"
    ) -> HTMLResponse:
        context = await run_context(run_id, s, sort, order)
        return page(request, "_run_body.html", **context)

    @app.get("/ui/programs", include_in_schema=False)
    async def ui_programs(request: Request, s: Store) -> HTMLResponse:
        return page(request, "programs.html", programs=await s.list_programs(), nav="programs")

    @app.get("/ui/programs/{name}", include_in_schema=False)
    async def ui_program(
        request: Request,
        name: str,
        s: Store,
        a: Annotated[int | None, Query(ge=1)] = None,
        b: Annotated[int | None, Query(ge=1)] = None,
    ) -> HTMLResponse:
        found = await versions_of(name, s)
        newest = found[-1].version
        b = b or newest
        a = a or max(1, b - 1)
        rows = views.config_diff(pick(found, a).spec, pick(found, b).spec)
        return page(
            request,
            "program.html",
            nav="programs",
            name=name,
            versions=found,
            a=a,
            b=b,
            diff=rows,
        )

    return app
