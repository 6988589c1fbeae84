"""A registry held in memory: a fake of the kernel's registry collaborator (the real one is
exercised by the integration tests). Manifests point at a file the fake engine never reads."""

from __future__ import annotations

import builtins
import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmos.config import Config, load_config
from llmos.domain.manifest import Manifest, ManifestFile
from llmos.domain.progress import Progress, ProgressFn
from llmos.engine.base import Engine
from llmos.engine.fake import FakeEngine
from llmos.errors import Conflict, ModelNotFound
from llmos.kernel import Kernel, build_kernel
from llmos.registry.names import parse_name
from llmos.registry.registry import close_names
from llmos.resources.estimate import ModelShape
from llmos.resources.inventory import Inventory

GiB = 1024**3
SHAPE = ModelShape(
    architecture="fake",
    n_layer=2,
    n_embd=64,
    n_ff=128,
    n_vocab=272,
    n_merges=0,
    tensor_bytes=1_000_000,
    kv_width_full=64,
).to_metadata()
"""A tiny model's shape, so the resource manager estimates without reading a file."""


def manifest(name: str, *, size: int = 1000, parameters: dict[str, Any] | None = None) -> Manifest:
    digest = hashlib.sha256(name.encode()).hexdigest()
    return Manifest(
        name=name,
        digest=digest,
        size=size,
        format="gguf",
        files=(ManifestFile(path="model.gguf", digest=digest, size=size),),
        architecture="fake",
        context_length=2048,
        parameters=parameters or {},
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        source="test",
        metadata=SHAPE,
    )


class MemoryRegistry:
    """Names → manifests; ``catalog`` names can be pulled (with progress), others cannot."""

    def __init__(self, root: Path, models: list[Manifest], catalog: list[Manifest] | None = None) -> None:
        self.root = root
        self.models = {m.name: m for m in models}
        self.catalog = {m.name: m for m in catalog or []}

    def in_catalog(self, name: str) -> bool:
        return name in self.catalog

    def resolve(self, name: str) -> Manifest:
        key = parse_name(name).name
        if key not in self.models:
            raise ModelNotFound(
                f"model {name!r} not found; pull it with 'llmos pull {name}'",
                param="model",
                suggestions=close_names(key, [*self.models, *self.catalog]),
            )
        return self.models[key]

    def list(self) -> builtins.list[Manifest]:
        return sorted(self.models.values(), key=lambda m: m.name)

    def pull(self, name: str, progress: ProgressFn | None = None) -> Manifest:
        key = parse_name(name).name
        if key not in self.catalog:
            raise ModelNotFound(f"{name!r} is not in the catalog", param="model")
        m = self.catalog[key]
        for done in (0, m.size // 2, m.size):
            if progress:
                progress(Progress("downloading", completed=done, total=m.size, digest=m.digest))
        self.models[key] = m
        return m

    def import_file(self, path: Path, name: str, progress: ProgressFn | None = None) -> Manifest:
        if not path.exists():
            raise ModelNotFound(f"no such file: {path}", param="path")
        m = manifest(parse_name(name).name, size=path.stat().st_size)
        if progress:
            progress(Progress("importing", completed=m.size, total=m.size))
        self.models[m.name] = m
        return m

    def remove(self, name: str) -> None:
        self.resolve(name)
        del self.models[parse_name(name).name]

    def copy(self, src: str, dst: str) -> Manifest:
        m = self.resolve(src)
        key = parse_name(dst).name
        if key in self.models:
            raise Conflict(f"{dst!r} exists", param="destination")
        self.models[key] = replace(m, name=key)
        return self.models[key]

    def versions(self, name: str) -> builtins.list[Manifest]:
        return [self.resolve(name)]

    def model_path(self, manifest: Manifest) -> Path:
        return self.root / manifest.digest


def inventory() -> Inventory:
    return Inventory(
        physical_cores=2,
        logical_cores=2,
        ram_total_bytes=16 * GiB,
        ram_available_bytes=8 * GiB,
        gpus=(),
    )


def fake_kernel(
    tmp: Path,
    *,
    models: list[str] = ("fake:1",),  # type: ignore[assignment]
    catalog: list[str] = (),  # type: ignore[assignment]
    step_cost_s: float = 0.0,
    config: Config | None = None,
    engines: list[FakeEngine] | None = None,
    replica_hosts: Any = None,
    **extra: Any,
) -> Kernel:
    """A kernel over fake engines and a memory registry; ``engines`` collects the engines made."""
    made = engines if engines is not None else []

    def engine_factory(backend: str) -> Engine:
        engine = FakeEngine()
        made.append(engine)
        return engine

    cfg = config or load_config(home=tmp / "home", n_slots=16, n_ctx=16 * 512)
    return build_kernel(
        cfg,
        registry=MemoryRegistry(tmp, [manifest(n) for n in models], [manifest(n) for n in catalog]),
        engine_factory=engine_factory,
        inventory=inventory(),
        load_extra={"step_cost_s": step_cost_s, **extra},
        replica_hosts=replica_hosts,
    )
