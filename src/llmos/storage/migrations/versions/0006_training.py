"""training: fine-tuning jobs, their events and checkpoints

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "training_jobs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(200), nullable=False),
        sa.Column("model", sa.String(330), nullable=False),
        sa.Column("base_digest", sa.String(64), nullable=False),
        sa.Column("training_dataset", sa.BigInteger(), nullable=False),
        sa.Column("validation_dataset", sa.BigInteger(), nullable=True),
        sa.Column("hyperparameters", sa.JSON(), nullable=False),
        sa.Column("suffix", sa.String(64), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result_model", sa.String(330), nullable=True),
        sa.Column("trained_tokens", sa.BigInteger(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_training_jobs_tenant", "training_jobs", ["tenant"])
    op.create_index("ix_training_jobs_state", "training_jobs", ["state"])
    op.create_table(
        "training_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "job_id", sa.String(40), sa.ForeignKey("training_jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("type", sa.String(10), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_index("ix_training_events_job_id", "training_events", ["job_id"])
    op.create_table(
        "training_checkpoints",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "job_id", sa.String(40), sa.ForeignKey("training_jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
    )
    op.create_index("ix_training_checkpoints_job_id", "training_checkpoints", ["job_id"])


def downgrade() -> None:
    op.drop_table("training_checkpoints")
    op.drop_table("training_events")
    op.drop_table("training_jobs")
