"""ORM rows. They never leave ``llmos.storage``: repositories turn them into domain objects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class ManifestRow(Base):
    """One model version: a family plus the digest of its content."""

    __tablename__ = "manifests"
    __table_args__ = (UniqueConstraint("family", "digest", name="uq_manifests_family_digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    family: Mapped[str] = mapped_column(String(200), index=True)
    name: Mapped[str] = mapped_column(String(330), index=True)
    """The ``family:tag`` this version was registered under."""
    digest: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(40))
    architecture: Mapped[str] = mapped_column(String(100), default="")
    parameter_count: Mapped[int] = mapped_column(BigInteger, default=0)
    quantization: Mapped[str] = mapped_column(String(40), default="")
    context_length: Mapped[int] = mapped_column(BigInteger, default=0)
    embedding_length: Mapped[int] = mapped_column(BigInteger, default=0)
    chat_template: Mapped[str | None] = mapped_column(Text, nullable=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    license: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(Text, default="")
    parent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    extra: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)

    files: Mapped[list[ManifestFileRow]] = relationship(
        back_populates="manifest",
        cascade="all, delete-orphan",
        order_by="ManifestFileRow.position",
        lazy="selectin",
    )


class ManifestFileRow(Base):
    """A file of a model version; ``digest`` names its blob."""

    __tablename__ = "manifest_files"

    manifest_id: Mapped[int] = mapped_column(ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(500))
    digest: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)

    manifest: Mapped[ManifestRow] = relationship(back_populates="files")


class TagRow(Base):
    """``family:tag`` → the version it currently names. Older versions stay in ``manifests``."""

    __tablename__ = "tags"

    family: Mapped[str] = mapped_column(String(200), primary_key=True)
    tag: Mapped[str] = mapped_column(String(128), primary_key=True)
    manifest_id: Mapped[int] = mapped_column(ForeignKey("manifests.id", ondelete="CASCADE"), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    manifest: Mapped[ManifestRow] = relationship(lazy="joined")
