"""Subjects and streams: where each event is published. Subjects carry the major version;
a breaking change gets a new subject and both are served while clients move."""

from __future__ import annotations

PREFIX = "dspex"

EXEC_REQUESTED = "dspex.exec.requested.v1"
EXEC_COMPLETED = "dspex.exec.completed.v1"
EXEC_FAILED = "dspex.exec.failed.v1"
PROGRAM_REGISTERED = "dspex.program.registered.v1"
PROGRAM_UPDATED = "dspex.program.updated.v1"
OPTIMIZE_REQUESTED = "dspex.optimize.requested.v1"
CANDIDATE_PROPOSED = "dspex.candidate.proposed.v1"
CANDIDATE_SCORED = "dspex.candidate.scored.v1"
RUN_PROGRESS = "dspex.run.progress.v1"
RUN_COMPLETED = "dspex.run.completed.v1"
RUN_PAUSE = "dspex.run.pause.v1"
RUN_RESUME = "dspex.run.resume.v1"
RUN_CANCEL = "dspex.run.cancel.v1"
DEAD_LETTER = "dspex.deadletter.v1"

# Request/reply (core NATS, not stored): a synchronous execution. Outside `dspex.exec.>` on
# purpose, or the stream would answer the request with its PubAck.
EXEC_CALL = "dspex.rpc.exec.v1"

# Core NATS, not stored: a registry replica announces that it recorded a change to a run
# (the body is the run id), so that every replica's run explorer can refresh its open pages.
RUN_CHANGED_NOTICE = "dspex.notice.run.changed.v1"

# JetStream streams and the subjects each one stores. Work subjects are consumed by durable
# pull consumers shared by all replicas of a service.
STREAMS: dict[str, tuple[str, ...]] = {
    "DSPEX_EXEC": ("dspex.exec.>",),
    "DSPEX_PROGRAM": ("dspex.program.>",),
    "DSPEX_OPTIMIZE": (
        "dspex.optimize.>",
        "dspex.run.pause.>",
        "dspex.run.resume.>",
        "dspex.run.cancel.>",
    ),
    "DSPEX_CANDIDATE": ("dspex.candidate.>",),
    "DSPEX_RUN": ("dspex.run.progress.>", "dspex.run.completed.>"),
    "DSPEX_DLQ": ("dspex.deadletter.>",),
}


def stream_for(subject: str) -> str:
    """The stream that stores ``subject``."""
    for stream, patterns in STREAMS.items():
        for pattern in patterns:
            if subject == pattern or (pattern.endswith(">") and subject.startswith(pattern[:-1])):
                return stream
    raise KeyError(f"no stream stores subject {subject!r}")
