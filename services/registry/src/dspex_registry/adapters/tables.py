"""The registry's tables as SQLAlchemy Core metadata: what the store queries, and what the
migrations must build (a test compares the two)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

# Deterministic constraint names, so that migrations can name what they create and drop.
metadata = MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ix": "ix_%(table_name)s_%(column_0_name)s",
    }
)

programs = Table(
    "programs",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("spec", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # What created the version (a registration event, a run): unique, for idempotency.
    Column("origin", String(300), nullable=False, unique=True),
    Column("run_id", String(128), nullable=True),
    Column("score", Float, nullable=True),
    Column("source", Text, nullable=True),
    Column("registered_by", String(128), nullable=True),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(128), primary_key=True),
    Column("status", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("program_name", String(128), nullable=True),
    Column("program_version", Integer, nullable=True),
    Column("inline_spec", JSON, nullable=True),
    Column("strategy", String(100), nullable=True),
    Column("metric", String(100), nullable=True),
    Column("seed", BigInteger, nullable=True),
    Column("budget", JSON, nullable=True),
    Column("apply", Boolean, nullable=False),
    Column("trainset_id", String(80), nullable=True),
    Column("valset_id", String(80), nullable=True),
    Column("requested_by", String(128), nullable=True),
    Column("stop_reason", String(100), nullable=True),
    Column("baseline_score", Float, nullable=True),
    Column("best_score", Float, nullable=True),
    Column("best_candidate_id", String(128), nullable=True),
    Column("best_assignment", JSON, nullable=True),
    Column("best_overrides", JSON, nullable=True),
    Column("evaluations", Integer, nullable=False),
    Column("lm_calls", Integer, nullable=False),
    Column("cached_calls", Integer, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("message", Text, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("progress_at", DateTime(timezone=True), nullable=True),
    Column("wall_s", Float, nullable=True),
    Column("applied_version", Integer, nullable=True),
    Column("error", JSON, nullable=True),
    Index("ix_runs_created_at", "created_at"),
    Index("ix_runs_status", "status"),
    Index("ix_runs_program_name", "program_name"),
)

candidates = Table(
    "candidates",
    metadata,
    Column("call_id", String(180), primary_key=True),
    Column("run_id", String(128), nullable=False),
    Column("candidate_id", String(128), nullable=False),
    Column("score", Float, nullable=False),
    Column("examples", Integer, nullable=False),
    Column("lm_calls", Integer, nullable=False),
    Column("cached_calls", Integer, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("latency_s", Float, nullable=True),
    Column("error", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_candidates_run_id", "run_id", "created_at"),
)

run_progress = Table(
    "run_progress",
    metadata,
    Column("run_id", String(128), primary_key=True),
    Column("status", String(32), primary_key=True),
    Column("evaluations", Integer, primary_key=True, autoincrement=False),
    Column("lm_calls", Integer, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("best_score", Float, nullable=True),
    Column("cost_usd", Float, nullable=False),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("count", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
