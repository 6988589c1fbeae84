"""security: rate windows and budget reservations in the database, shared by every front-end

Numbered 0007: it follows issue 19's 0006 (training jobs).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "limit_subjects",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_table(
        "limit_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("tokens", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_index("ix_limit_events_subject_at", "limit_events", ["kind", "name", "at"])
    op.create_table(
        "limit_holds",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("reserved", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("expires_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_limit_holds_subject", "limit_holds", ["kind", "name"])


def downgrade() -> None:
    op.drop_index("ix_limit_holds_subject", "limit_holds")
    op.drop_table("limit_holds")
    op.drop_index("ix_limit_events_subject_at", "limit_events")
    op.drop_table("limit_events")
    op.drop_table("limit_subjects")
