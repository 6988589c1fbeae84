"""registry: manifests, manifest files, tags

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "manifests",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("family", sa.String(200), nullable=False),
        sa.Column("name", sa.String(330), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("format", sa.String(40), nullable=False),
        sa.Column("architecture", sa.String(100), nullable=False),
        sa.Column("parameter_count", sa.BigInteger(), nullable=False),
        sa.Column("quantization", sa.String(40), nullable=False),
        sa.Column("context_length", sa.BigInteger(), nullable=False),
        sa.Column("embedding_length", sa.BigInteger(), nullable=False),
        sa.Column("chat_template", sa.Text(), nullable=True),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("license", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("parent", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.UniqueConstraint("family", "digest", name="uq_manifests_family_digest"),
    )
    op.create_index("ix_manifests_family", "manifests", ["family"])
    op.create_index("ix_manifests_name", "manifests", ["name"])
    op.create_index("ix_manifests_digest", "manifests", ["digest"])
    op.create_table(
        "manifest_files",
        sa.Column(
            "manifest_id", sa.Integer(), sa.ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_manifest_files_digest", "manifest_files", ["digest"])
    op.create_table(
        "tags",
        sa.Column("family", sa.String(200), primary_key=True),
        sa.Column("tag", sa.String(128), primary_key=True),
        sa.Column(
            "manifest_id", sa.Integer(), sa.ForeignKey("manifests.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_tags_manifest_id", "tags", ["manifest_id"])


def downgrade() -> None:
    op.drop_table("tags")
    op.drop_table("manifest_files")
    op.drop_table("manifests")
