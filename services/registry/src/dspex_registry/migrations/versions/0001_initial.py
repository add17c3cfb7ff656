"""The registry's first schema: programs, runs, candidates, datasets.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "programs",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("origin", sa.String(300), nullable=False),
        sa.Column("run_id", sa.String(128), nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("source", sa.Text, nullable=True),
        sa.Column("registered_by", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("name", "version", name="pk_programs"),
        sa.UniqueConstraint("origin", name="uq_programs_origin"),
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("program_name", sa.String(128), nullable=True),
        sa.Column("program_version", sa.Integer, nullable=True),
        sa.Column("inline_spec", sa.JSON, nullable=True),
        sa.Column("strategy", sa.String(100), nullable=True),
        sa.Column("metric", sa.String(100), nullable=True),
        sa.Column("seed", sa.BigInteger, nullable=True),
        sa.Column("budget", sa.JSON, nullable=True),
        sa.Column("apply", sa.Boolean, nullable=False),
        sa.Column("trainset_id", sa.String(80), nullable=True),
        sa.Column("valset_id", sa.String(80), nullable=True),
        sa.Column("requested_by", sa.String(128), nullable=True),
        sa.Column("stop_reason", sa.String(100), nullable=True),
        sa.Column("baseline_score", sa.Float, nullable=True),
        sa.Column("best_score", sa.Float, nullable=True),
        sa.Column("best_candidate_id", sa.String(128), nullable=True),
        sa.Column("best_assignment", sa.JSON, nullable=True),
        sa.Column("best_overrides", sa.JSON, nullable=True),
        sa.Column("evaluations", sa.Integer, nullable=False),
        sa.Column("lm_calls", sa.Integer, nullable=False),
        sa.Column("cached_calls", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("started_at", UTC_TIME, nullable=True),
        sa.Column("finished_at", UTC_TIME, nullable=True),
        sa.Column("progress_at", UTC_TIME, nullable=True),
        sa.Column("wall_s", sa.Float, nullable=True),
        sa.Column("applied_version", sa.Integer, nullable=True),
        sa.Column("error", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
    )
    op.create_index("ix_runs_created_at", "runs", ["created_at"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_index("ix_runs_program_name", "runs", ["program_name"])
    op.create_table(
        "candidates",
        sa.Column("call_id", sa.String(180), nullable=False),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("candidate_id", sa.String(128), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("examples", sa.Integer, nullable=False),
        sa.Column("lm_calls", sa.Integer, nullable=False),
        sa.Column("cached_calls", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("latency_s", sa.Float, nullable=True),
        sa.Column("error", sa.JSON, nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("call_id", name="pk_candidates"),
    )
    op.create_index("ix_candidates_run_id", "candidates", ["run_id", "created_at"])
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(80), nullable=False),
        sa.Column("count", sa.Integer, nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
    )


def downgrade() -> None:
    op.drop_table("datasets")
    op.drop_index("ix_candidates_run_id", table_name="candidates")
    op.drop_table("candidates")
    op.drop_index("ix_runs_program_name", table_name="runs")
    op.drop_index("ix_runs_status", table_name="runs")
    op.drop_index("ix_runs_created_at", table_name="runs")
    op.drop_table("runs")
    op.drop_table("programs")
