"""Request/reply reads of the registry over core NATS (not stored): one subject per operation
under ``dspex.rpc.registry.v1``, a strict request model each, and a reply that is either
``{"ok": true, "data": ...}`` or ``{"ok": false, "error": {"code", "message"}}``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from .common import MAX_NAME, NAME_PATTERN, RunId, Score
from .envelope import Strict
from .events.run import RunStatus

REGISTRY_RPC_PREFIX = "dspex.rpc.registry.v1"
"""Outside every stream's subjects on purpose: a stream would answer with its PubAck."""


def registry_subject(op: str) -> str:
    """The subject of the registry operation ``op`` (``"program.get"``, ...)."""
    if op not in REGISTRY_OPS:
        raise KeyError(f"unknown registry operation {op!r}; known: {sorted(REGISTRY_OPS)}")
    return f"{REGISTRY_RPC_PREFIX}.{op}"


ProgramName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_NAME,
        pattern=NAME_PATTERN,
        description="Registered program name.",
        examples=["math_qa"],
    ),
]


class ProgramGetRequest(Strict):
    """``program.get``: one version of a program (the latest when ``version`` is omitted)."""

    name: ProgramName
    version: int | None = Field(default=None, ge=1, description="Omitted for the latest.")


class ProgramListRequest(Strict):
    """``program.list``: every registered program with its latest version."""


class ProgramVersionsRequest(Strict):
    """``program.versions``: every version of one program, oldest first."""

    name: ProgramName


class RunGetRequest(Strict):
    """``run.get``: one optimization run."""

    run_id: RunId


class RunListRequest(Strict):
    """``run.list``: runs, newest first, optionally of one status or one program."""

    status: RunStatus | None = Field(default=None, description="Only runs in this status.")
    program: str | None = Field(
        default=None, max_length=MAX_NAME, description="Only runs of this program name."
    )
    limit: int = Field(default=50, ge=1, le=1000, description="Most runs returned.")


class RunCandidatesRequest(Strict):
    """``run.candidates``: the scored evaluation calls of a run, in the order they were made."""

    run_id: RunId
    limit: int = Field(default=1000, ge=1, le=10_000, description="Most candidates returned.")


class DatasetGetRequest(Strict):
    """``dataset.get``: what the registry knows of a dataset id (seen in a run request)."""

    id: str = Field(pattern=r"^sha256:[0-9a-f]{64}$", description="Content hash of the dataset.")


class Tolerant(BaseModel):
    """Base of reply models: a newer registry may add fields, which older clients ignore."""

    model_config = ConfigDict(extra="ignore")


class ProgramInfo(Tolerant):
    """One version of a program."""

    name: str = Field(description="Program name.")
    version: int = Field(ge=1, description="The version.")
    spec: dict[str, Any] = Field(description="The ProgramSpec of this version, JSON form.")
    created_at: datetime = Field(description="When the version was registered.")
    run_id: str | None = Field(default=None, description="The run that produced it, if any.")
    score: float | None = Field(default=None, description="The score that earned it.")
    source: str | None = Field(default=None, description="Where the spec came from.")
    registered_by: str | None = Field(default=None, description="Who registered it.")


class ProgramSummary(Tolerant):
    """A program and its latest version."""

    name: str
    latest_version: int = Field(ge=1)
    versions: int = Field(ge=1, description="How many versions exist.")
    updated_at: datetime = Field(description="When the latest version was registered.")
    score: float | None = Field(default=None, description="Score of the latest version.")


class RunInfo(Tolerant):
    """What the registry knows of a run: the request, the latest progress, the outcome."""

    run_id: str
    status: RunStatus
    program_name: str | None = None
    program_version: int | None = None
    strategy: str | None = None
    metric: str | None = None
    seed: int | None = None
    budget: dict[str, Any] | None = None
    apply: bool = False
    trainset_id: str | None = None
    valset_id: str | None = None
    requested_by: str | None = None
    stop_reason: str | None = None
    baseline_score: Score | None = None
    best_score: Score | None = None
    best_candidate_id: str | None = None
    best_assignment: dict[str, Any] | None = None
    best_overrides: dict[str, Any] | None = None
    evaluations: int = 0
    lm_calls: int = 0
    cached_calls: int = 0
    cost_usd: float = 0.0
    message: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    wall_s: float | None = None
    applied_version: int | None = None
    error: dict[str, Any] | None = None


class CandidateInfo(Tolerant):
    """One scored evaluation call of a run."""

    run_id: str
    call_id: str
    candidate_id: str
    score: float
    examples: int = Field(description="Examples scored in the call.")
    lm_calls: int = 0
    cached_calls: int = 0
    cost_usd: float = 0.0
    latency_s: float | None = None
    error: dict[str, Any] | None = None
    created_at: datetime


class DatasetInfo(Tolerant):
    """A dataset named in a run request."""

    id: str
    count: int | None = None
    created_at: datetime = Field(description="When the registry first saw it.")


class RpcError(Tolerant):
    """Why a request failed."""

    code: str = Field(description="Stable error code, e.g. unknown_program.")
    message: str = Field(description="Human-readable explanation.")
    retryable: bool = Field(default=False, description="Whether asking again may succeed.")


T = TypeVar("T")


class RpcReply(Tolerant, Generic[T]):
    """The reply to every registry request."""

    ok: bool
    data: T | None = None
    error: RpcError | None = None


REGISTRY_OPS: dict[str, tuple[type[Strict], Any]] = {
    "program.get": (ProgramGetRequest, ProgramInfo),
    "program.list": (ProgramListRequest, list[ProgramSummary]),
    "program.versions": (ProgramVersionsRequest, list[ProgramInfo]),
    "run.get": (RunGetRequest, RunInfo),
    "run.list": (RunListRequest, list[RunInfo]),
    "run.candidates": (RunCandidatesRequest, list[CandidateInfo]),
    "dataset.get": (DatasetGetRequest, DatasetInfo),
}
"""Operation -> (request model, type of the reply's ``data``)."""
