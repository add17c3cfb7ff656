"""Valid example events, one or more of every type, shared by the contract tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dspex_contracts import (
    Budget,
    CancelRun,
    CancelRunPayload,
    CandidateProposed,
    CandidateProposedPayload,
    CandidateScored,
    CandidateScoredPayload,
    DatasetRef,
    DeadLettered,
    DeadLetteredPayload,
    Envelope,
    ErrorInfo,
    EvaluationSettings,
    ExampleScore,
    ExecuteCompleted,
    ExecuteCompletedPayload,
    ExecuteFailed,
    ExecuteFailedPayload,
    ExecuteRequested,
    ExecuteRequestedPayload,
    LMSettings,
    OptimizeRequested,
    OptimizeRequestedPayload,
    PauseRun,
    PauseRunPayload,
    ProgramRef,
    ProgramRegistered,
    ProgramRegisteredPayload,
    ProgramSource,
    ProgramUpdated,
    ProgramUpdatedPayload,
    ResumeRun,
    ResumeRunPayload,
    RunCompleted,
    RunCompletedPayload,
    RunProgress,
    RunProgressPayload,
    RunStatus,
    UsageInfo,
    call_id_for,
    dataset_id,
)

CONTRACTS = Path(__file__).resolve().parents[1]

SPEC: dict[str, Any] = {
    "name": "math_qa",
    "stages": [{"name": "answer", "module": "predict", "signature": "question -> answer"}],
}
EXAMPLES = [{"question": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(5)]


@pytest.fixture(scope="session")
def generator() -> ModuleType:
    """contracts/tools/generate.py, loaded in-process (it is a script, not a package)."""
    path = CONTRACTS / "tools" / "generate.py"
    spec = importlib.util.spec_from_file_location("dspex_contracts_generate", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_events() -> list[Envelope[Any]]:
    """At least one valid event of every type, with optional parts filled in."""
    usage = UsageInfo(calls=3, cached_calls=1, prompt_tokens=300, completion_tokens=20)
    registered = ProgramSource(ref=ProgramRef(name="math_qa", version=2))
    request = ExecuteRequested.create(
        ExecuteRequestedPayload(
            program=ProgramSource(spec=SPEC), inputs={"question": "What is 6 times 7?"}
        ),
        correlation_id="client-1",
    )
    optimize = OptimizeRequested.create(
        OptimizeRequestedPayload(
            run_id="run-42",
            program=registered,
            trainset=DatasetRef(examples=EXAMPLES),
            valset=DatasetRef(id=dataset_id(EXAMPLES), count=len(EXAMPLES)),
            metric="exact_match",
            strategy="bootstrap",
            strategy_params={"max_demos": 4},
            seed=7,
            budget=Budget(max_lm_calls=1000, max_cost_usd=2.5, max_wall_s=600),
            lm=LMSettings(model="openai/gpt-4o-mini", temperature=0.0),
            apply=True,
            evaluation=EvaluationSettings(batch_size=16, concurrency=4),
        )
    )
    proposed = CandidateProposed.create(
        CandidateProposedPayload(
            run_id="run-42",
            call_id=call_id_for("run-42", 3),
            candidate_id="c0001",
            program=registered,
            assignment={"temperature": 0.3},
            overrides={"answer.instructions": "Answer with a number only."},
            dataset=DatasetRef(id=dataset_id(EXAMPLES), count=len(EXAMPLES)),
            example_indices=[0, 1, 4],
            want_traces=True,
            metric="exact_match",
        ),
        causation=optimize,
    )
    scored = CandidateScored.create(
        CandidateScoredPayload(
            run_id="run-42",
            call_id=proposed.payload.call_id,
            candidate_id="c0001",
            results=[
                ExampleScore(index=0, score=1.0, outputs={"answer": "0"}, usage=usage),
                ExampleScore(
                    index=1,
                    score=0.0,
                    error=ErrorInfo(code="lm_timeout", message="timed out", retryable=True),
                ),
                ExampleScore(index=4, score=1.0, outputs={"answer": "8"}, trace=[{"stage": "a"}]),
            ],
            score=2 / 3,
            usage=usage,
            latency_s=1.5,
        ),
        causation=proposed,
    )
    completed_run = RunCompleted.create(
        RunCompletedPayload(
            run_id="run-42",
            status=RunStatus.BUDGET_EXHAUSTED,
            stop_reason="max_lm_calls",
            program=ProgramRef(name="math_qa", version=2),
            baseline_score=0.5,
            best_score=0.75,
            best_candidate_id="c0001",
            best_assignment={"temperature": 0.3},
            best_overrides={},
            usage=usage,
            evaluations=40,
            wall_s=300.0,
            apply=True,
        )
    )
    return [
        request,
        ExecuteCompleted.create(
            ExecuteCompletedPayload(
                request_id=request.id,
                program=ProgramRef(name="qa", version=1),
                outputs={"answer": "42"},
                usage=usage,
                latency_s=0.2,
                trace=[{"stage": "answer"}],
            ),
            causation=request,
        ),
        ExecuteFailed.create(
            ExecuteFailedPayload(
                request_id=request.id, error=ErrorInfo(code="invalid_input", message="no")
            ),
            causation=request,
        ),
        ProgramRegistered.create(ProgramRegisteredPayload(spec=SPEC, source="cli")),
        ProgramUpdated.create(
            ProgramUpdatedPayload(
                name="math_qa", version=3, spec=SPEC, previous_version=2, run_id="run-42"
            )
        ),
        optimize,
        proposed,
        scored,
        RunProgress.create(
            RunProgressPayload(
                run_id="run-42",
                status=RunStatus.RUNNING,
                strategy="bootstrap",
                baseline_score=0.5,
                best_score=0.75,
                best_candidate_id="c0001",
                evaluations=12,
                lm_calls=96,
                cost_usd=0.01,
                elapsed_s=30.0,
                eta_s=60.0,
                message="bootstrapping",
            )
        ),
        completed_run,
        PauseRun.create(PauseRunPayload(run_id="run-42", reason="quota")),
        ResumeRun.create(ResumeRunPayload(run_id="run-42")),
        CancelRun.create(CancelRunPayload(run_id="run-42", requested_by="alice")),
        DeadLettered.create(
            DeadLetteredPayload(
                subject="dspex.exec.requested.v1",
                reason="invalid_contract",
                message="payload.inputs: Field required",
                service="kernel",
                original="{}",
                original_size=2,
            )
        ),
    ]


@pytest.fixture
def events() -> list[Envelope[Any]]:
    return example_events()
