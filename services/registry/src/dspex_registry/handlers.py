"""The registry's business rules for the events it records, as plain functions of (event,
store): each returns the event to publish, if any. Every one is idempotent, because a
redelivered message must never count twice."""

from __future__ import annotations

import hashlib
from typing import Any

from dspex_contracts import (
    CandidateScored,
    OptimizeRequested,
    ProgramRegistered,
    ProgramUpdated,
    ProgramUpdatedPayload,
    RunCompleted,
    RunCompletedPayload,
    RunProgress,
    RunStatus,
)
from dspex_kernel import ProgramSpec
from dspex_runtime.errors import Retry

from .domain import ProgramVersion, RegistryStore, RunRecord, UnknownProgram
from .domain.records import CandidateRecord
from .domain.runs import dataset_key

# A best configuration found before the end (out of budget) is still worth applying; one
# from a cancelled or failed run is not.
APPLICABLE = frozenset({RunStatus.COMPLETED, RunStatus.BUDGET_EXHAUSTED})


async def program_registered(event: ProgramRegistered, store: RegistryStore) -> ProgramUpdated:
    """Validate the spec and store it as the next version of its name. The registry owns
    version numbers: a ``version`` in the submitted spec is replaced."""
    payload = event.payload
    spec = ProgramSpec.from_data(payload.spec)  # an invalid spec is dead-lettered
    stored, _ = await store.add_program(
        spec.name,
        spec.to_data(),
        origin=f"registered:{event.id}",
        at=event.occurred_at,
        source=payload.source,
        registered_by=payload.registered_by,
    )
    return program_updated(stored, event)


async def optimize_requested(event: OptimizeRequested, store: RegistryStore) -> None:
    payload = event.payload
    for ref in (payload.trainset, payload.valset):
        key = dataset_key(ref)
        if key is not None:
            await store.record_dataset(key[0], key[1], event.occurred_at)
    await store.record_requested(payload, event.occurred_at)


async def run_progress(event: RunProgress, store: RegistryStore) -> None:
    await store.record_progress(event.payload, event.occurred_at)


async def candidate_scored(event: CandidateScored, store: RegistryStore) -> None:
    p = event.payload
    await store.add_candidate(
        CandidateRecord(
            call_id=p.call_id,
            run_id=p.run_id,
            candidate_id=p.candidate_id,
            score=p.score,
            examples=len(p.results),
            created_at=event.occurred_at,
            lm_calls=p.usage.calls,
            cached_calls=p.usage.cached_calls,
            cost_usd=p.usage.cost_usd,
            latency_s=p.latency_s,
            error=p.error.model_dump() if p.error is not None else None,
        )
    )


async def run_completed(event: RunCompleted, store: RegistryStore) -> ProgramUpdated | None:
    """Finalise the run; when it asked to be applied and its best beats the baseline,
    register the best configuration as the program's next version (once per run)."""
    p = event.payload
    run = await store.record_completed(p, event.occurred_at)
    if not should_apply(p):
        return None
    base = await _base_spec(run, p, store)
    spec = ProgramSpec.from_data(base).with_configuration(p.best_overrides or {})
    stored, _ = await store.add_program(
        spec.name,
        spec.to_data(),
        origin=f"run:{p.run_id}",
        at=event.occurred_at,
        run_id=p.run_id,
        score=p.best_score,
        source=f"optimization run {p.run_id}",
    )
    await store.set_applied_version(p.run_id, stored.version)
    return program_updated(stored, event)


def should_apply(p: RunCompletedPayload) -> bool:
    if not (p.apply and p.best_overrides and p.status in APPLICABLE):
        return False
    if p.best_score is None:
        return False
    return p.baseline_score is None or p.best_score > p.baseline_score


async def _base_spec(run: RunRecord, p: RunCompletedPayload, store: RegistryStore) -> Any:
    if run.inline_spec is not None:
        return run.inline_spec
    registered = await store.get_program(p.program.name, p.program.version)
    if registered is not None:
        return registered.spec
    if run.strategy is None:
        # The request (on another stream) is not recorded yet; it may carry an inline spec.
        raise Retry(f"run {p.run_id}: its OptimizeRequested is not recorded yet")
    version = f" version {p.program.version}" if p.program.version else ""
    raise UnknownProgram(f"run {p.run_id} optimized {p.program.name!r}{version}, not registered")


def program_updated(stored: ProgramVersion, cause: Any) -> ProgramUpdated:
    """The announcement of ``stored``. Its id derives from the version and what created it:
    announcing it again (a redelivered registration) is a JetStream duplicate, while the
    same number in a fresh database is not."""
    origin = hashlib.sha256(stored.origin.encode()).hexdigest()[:12]
    return ProgramUpdated.create(
        ProgramUpdatedPayload(
            name=stored.name,
            version=stored.version,
            spec=stored.spec,
            previous_version=stored.version - 1 if stored.version > 1 else None,
            run_id=stored.run_id,
            score=stored.score,
        ),
        id=f"program-updated:{stored.name}:{stored.version}:{origin}",
        causation=cause,
    )
