"""Runs' progress history, from which the run explorer draws the score curve.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "run_progress",
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("evaluations", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("lm_calls", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("best_score", sa.Float, nullable=True),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint(
            "run_id", "status", "evaluations", "lm_calls", name="pk_run_progress"
        ),
    )


def downgrade() -> None:
    op.drop_table("run_progress")
