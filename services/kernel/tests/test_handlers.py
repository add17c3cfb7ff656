"""The kernel's handler as a plain function: every outcome without a broker."""

from __future__ import annotations

import pytest

from dspex_contracts import (
    ExecuteCompleted,
    ExecuteFailed,
    ExecuteRequested,
    ExecuteRequestedPayload,
    ProgramRef,
    ProgramSource,
)
from dspex_kernel import LMRateLimitError, ProgramSpec, Runtime
from dspex_kernel.lm import LMRequest
from dspex_kernel.testing import ScriptedLM, chat_reply
from dspex_kernel_service.handlers import answer_id, execute_request
from dspex_runtime.programs import InMemoryProgramStore, UnknownProgram

pytestmark = pytest.mark.unit

SPEC = {
    "name": "qa",
    "version": 2,
    "stages": [{"name": "s", "module": "predict", "signature": "question -> answer: int"}],
}
STORE = InMemoryProgramStore([ProgramSpec.from_data(SPEC)])
RUNTIME = Runtime(ScriptedLM(lambda r: chat_reply(answer=42)), model="m")


def request(**program: object) -> ExecuteRequested:
    source = ProgramSource.model_validate(program or {"ref": {"name": "qa"}})
    return ExecuteRequested.create(
        ExecuteRequestedPayload(program=source, inputs={"question": "6*7?"}),
        correlation_id="corr-1",
    )


async def test_registered_program_completes() -> None:
    event = request()
    answer = await execute_request(event, programs=STORE, runtime=RUNTIME)
    assert isinstance(answer, ExecuteCompleted)
    assert answer.payload.outputs == {"answer": 42}
    assert answer.payload.program == ProgramRef(name="qa", version=2)
    assert answer.payload.usage.calls == 1
    assert answer.payload.trace is None
    assert (answer.causation_id, answer.correlation_id) == (event.id, "corr-1")
    assert answer.id == answer_id(event, "completed")
    again = await execute_request(event, programs=STORE, runtime=RUNTIME)
    assert again.id == answer.id  # a redelivery publishes the same id: stored once


async def test_inline_program_and_trace() -> None:
    event = request(spec=SPEC)
    event.payload.want_trace = True
    answer = await execute_request(event, programs=InMemoryProgramStore(), runtime=RUNTIME)
    assert isinstance(answer, ExecuteCompleted)
    assert answer.payload.trace is not None
    assert answer.payload.trace[0]["stage"] == "s"


@pytest.mark.parametrize(
    ("event", "code"),
    [
        (request(spec={"name": "bad", "stages": []}), "invalid_program"),
        (
            ExecuteRequested.create(
                ExecuteRequestedPayload(
                    program=ProgramSource(ref=ProgramRef(name="qa")), inputs={"q": 1}
                )
            ),
            "invalid_input",
        ),
        (
            ExecuteRequested.create(
                ExecuteRequestedPayload(
                    program=ProgramSource(ref=ProgramRef(name="qa")),
                    inputs={"question": "x"},
                    overrides={"s.temperature": 7},
                )
            ),
            "invalid_configuration",
        ),
    ],
)
async def test_bad_requests_answer_execute_failed(event: ExecuteRequested, code: str) -> None:
    answer = await execute_request(event, programs=STORE, runtime=RUNTIME)
    assert isinstance(answer, ExecuteFailed)
    assert answer.payload.error.code == code
    assert answer.payload.request_id == event.id


async def test_unknown_program_raises() -> None:
    with pytest.raises(UnknownProgram):
        await execute_request(request(ref={"name": "nope"}), programs=STORE, runtime=RUNTIME)
    with pytest.raises(UnknownProgram, match="no version 9"):
        await execute_request(
            request(ref={"name": "qa", "version": 9}), programs=STORE, runtime=RUNTIME
        )


async def test_transient_lm_errors_are_raised_until_the_last_delivery() -> None:
    def limited(request: LMRequest) -> str:
        raise LMRateLimitError("slow down", retry_after=1.0)

    runtime = Runtime(ScriptedLM(limited), model="m")
    with pytest.raises(LMRateLimitError):
        await execute_request(request(), programs=STORE, runtime=runtime)
    answer = await execute_request(
        request(), programs=STORE, runtime=runtime, retry_transient=False
    )
    assert isinstance(answer, ExecuteFailed)
    assert answer.payload.error.code == "lm_rate_limited"
    assert answer.payload.error.retryable
