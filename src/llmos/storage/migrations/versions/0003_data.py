"""data: collections, documents, chunks, datasets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Keyword search is dialect-specific: SQLite gets an FTS5 table over ``data_chunks.text`` kept in
step by triggers; PostgreSQL gets a generated ``tsvector`` column with a GIN index. Vector indexes
(sqlite-vec ``vec0`` / pgvector HNSW) depend on the embedding dimension and are created on first
use by ``llmos.storage.data_vectors``; their tables are dropped here on downgrade.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_collections",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("embedding_model", sa.String(330), nullable=False),
        sa.Column("dimensions", sa.Integer(), nullable=True),
        sa.Column("chunk_tokens", sa.Integer(), nullable=False),
        sa.Column("chunk_overlap", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant", "name", name="uq_data_collections_tenant_name"),
    )
    op.create_index("ix_data_collections_tenant", "data_collections", ["tenant"])
    op.create_table(
        "data_documents",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "collection_id",
            sa.Integer(),
            sa.ForeignKey("data_collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("tenant", sa.String(200), nullable=False),
        sa.Column("name", sa.String(1000), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("latest", sa.Boolean(), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("embedding_model", sa.String(330), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("collection_id", "name", "version", name="uq_data_documents_name_version"),
    )
    op.create_index("ix_data_documents_collection_id", "data_documents", ["collection_id"])
    op.create_index("ix_data_documents_tenant", "data_documents", ["tenant"])
    op.create_index("ix_data_documents_latest", "data_documents", ["latest"])
    op.create_table(
        "data_chunks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column(
            "document_id",
            sa.Integer(),
            sa.ForeignKey("data_documents.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("start_char", sa.Integer(), nullable=False),
        sa.Column("end_char", sa.Integer(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_data_chunks_document_id", "data_chunks", ["document_id"])
    op.create_index("ix_data_chunks_collection_id", "data_chunks", ["collection_id"])
    op.create_table(
        "data_datasets",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(200), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("token_count", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant", "name", "version", name="uq_data_datasets_name_version"),
    )
    op.create_index("ix_data_datasets_tenant", "data_datasets", ["tenant"])
    op.create_index("ix_data_datasets_digest", "data_datasets", ["digest"])

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE data_chunks_fts USING fts5("
            "text, content='data_chunks', content_rowid='id', tokenize='porter unicode61')"
        )
        op.execute(
            "CREATE TRIGGER data_chunks_fts_insert AFTER INSERT ON data_chunks BEGIN "
            "INSERT INTO data_chunks_fts(rowid, text) VALUES (new.id, new.text); END"
        )
        op.execute(
            "CREATE TRIGGER data_chunks_fts_delete AFTER DELETE ON data_chunks BEGIN "
            "INSERT INTO data_chunks_fts(data_chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END"
        )
    elif dialect == "postgresql":
        op.execute(
            "ALTER TABLE data_chunks ADD COLUMN tsv tsvector "
            "GENERATED ALWAYS AS (to_tsvector('english', text)) STORED"
        )
        op.execute("CREATE INDEX ix_data_chunks_tsv ON data_chunks USING gin (tsv)")


def downgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS data_chunks_fts_insert")
        op.execute("DROP TRIGGER IF EXISTS data_chunks_fts_delete")
        op.execute("DROP TABLE IF EXISTS data_chunks_fts")
        names = bind.execute(
            sa.text("SELECT name FROM sqlite_master WHERE type='table' AND sql LIKE '%USING vec0%'")
        ).scalars()
    else:
        names = bind.execute(
            sa.text("SELECT tablename FROM pg_tables WHERE tablename LIKE 'data\\_vectors\\_%'")
        ).scalars()
    for name in list(names):
        op.execute(f'DROP TABLE IF EXISTS "{name}"')
    op.drop_table("data_datasets")
    op.drop_table("data_chunks")
    op.drop_table("data_documents")
    op.drop_table("data_collections")
