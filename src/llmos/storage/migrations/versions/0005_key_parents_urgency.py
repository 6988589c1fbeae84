"""security: a key's parent (keys made by keys) and a tenant's urgency ceiling

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(40), nullable=True))
        batch.create_index("ix_api_keys_parent_id", ["parent_id"])
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("max_urgency", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("max_urgency")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_index("ix_api_keys_parent_id")
        batch.drop_column("parent_id")
