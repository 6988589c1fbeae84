"""The weights file a CPU load actually maps: the model file itself, or its Q8_0 re-encoding.

:mod:`llmos.engine.cpu_weights` decides *whether* (Q4_1 / Q5_1 files, ``cpu_weights="auto"``, no
GPU layers); this module converts with llama.cpp's own quantizer (``llama_model_quantize``,
requantizing) once per model file and keeps the result in a derived-weights folder
(``LoadSpec.derived_dir``, under ``LLMOS_HOME`` when the kernel loads):

- named after the source: ``sha256-<digest>.q8_0.gguf`` for a content-addressed blob (the
  registry deletes it with its blob), else ``<stem>-<hash of path, size, mtime>.q8_0.gguf``;
- written to a temp file in that folder and renamed only once llama.cpp reports success, so a
  crash mid-conversion leaves no half-written file under the final name (temps of dead
  processes are swept before the next conversion);
- a cached file that llama.cpp then cannot load is deleted and the source is loaded instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import llama_cpp

from llmos.engine.cpu_weights import FILE_TYPE_NAMES, conversion_target, parse_mode
from llmos.engine.gguf_header import read_gguf_header
from llmos.errors import EngineError, InvalidModelFile
from llmos.procs import pid_alive

logger = logging.getLogger(__name__)

_BLOB_NAME = re.compile(r"^sha256-[0-9a-f]{64}$")
_TEMP = re.compile(r"^\.tmp-(\d+)-")


@dataclass(frozen=True)
class WeightsChoice:
    """Which file to map, and why."""

    path: Path
    file_type: int | None
    """The model file's ``general.file_type`` (None when the header has none)."""
    converted_to: int | None = None
    """The file type of ``path`` when it is a conversion of the model file."""

    @property
    def description(self) -> str:
        src = FILE_TYPE_NAMES.get(self.file_type or -1, f"type {self.file_type}")
        if self.converted_to is None:
            return f"{src} (as stored)"
        return f"{FILE_TYPE_NAMES.get(self.converted_to, self.converted_to)} (converted from {src})"


def file_type(path: Path) -> int | None:
    """``general.file_type`` from the GGUF header (None when missing or unreadable: llama.cpp's
    load then reports the real problem)."""
    try:
        value = read_gguf_header(path).fields.get("general.file_type")
    except InvalidModelFile:
        return None
    return value if isinstance(value, int) else None


def derived_name(source: Path, target: int) -> str:
    suffix = f".{FILE_TYPE_NAMES.get(target, f'ftype{target}')}.gguf"
    if _BLOB_NAME.match(source.name):
        return source.name + suffix
    st = source.stat()
    key = hashlib.sha256(f"{source.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return f"{source.stem}-{key}{suffix}"


def default_derived_dir() -> Path:
    """Where conversions go when the caller names no folder (engines used outside the kernel)."""
    return Path(tempfile.gettempdir()) / f"llmos-derived-{os.getuid()}"


def choose_weights(
    source: Path, mode: object = "auto", *, gpu_layers: int = 0, derived_dir: Path | None = None
) -> WeightsChoice:
    """The file to load for ``source`` under ``mode`` (see module docstring). Raises
    InvalidRequest for an unknown mode, EngineError when a needed conversion fails."""
    cpu_weights = parse_mode(mode)
    ftype = file_type(source)
    target = conversion_target(ftype, cpu_weights, gpu_layers=gpu_layers)
    if target is None:
        return WeightsChoice(path=source, file_type=ftype)
    dest = (derived_dir or default_derived_dir()) / derived_name(source, target)
    if not dest.is_file():
        t0 = time.perf_counter()
        convert(source, dest, target)
        logger.info(
            "converted %s (%s) to %s for batched CPU kernels in %.1f s: %s",
            source.name,
            FILE_TYPE_NAMES.get(ftype or -1, ftype),
            FILE_TYPE_NAMES.get(target, target),
            time.perf_counter() - t0,
            dest,
        )
    return WeightsChoice(path=dest, file_type=ftype, converted_to=target)


def convert(source: Path, dest: Path, target: int) -> None:
    """Re-encode ``source`` as file type ``target`` into ``dest``, atomically. Raises EngineError."""
    folder = dest.parent
    folder.mkdir(parents=True, exist_ok=True)
    sweep_temps(folder)
    fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-", suffix=".gguf", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = target
        params.allow_requantize = True
        params.nthread = max(1, len(os.sched_getaffinity(0)))
        rc = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0:
            raise EngineError(
                f"could not convert {source.name} to {FILE_TYPE_NAMES.get(target, target)} "
                f"(llama_model_quantize returned {rc}); set LLMOS_CPU_WEIGHTS=native to load it as it is"
            )
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except OSError as exc:
        raise EngineError(
            f"could not write the converted weights of {source.name} to {folder}: {exc.strerror or exc}; "
            "free disk space there or set LLMOS_CPU_WEIGHTS=native"
        ) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def sweep_temps(folder: Path) -> int:
    """Delete temp files of conversions whose process is gone. Returns how many."""
    removed = 0
    for p in folder.iterdir():
        m = _TEMP.match(p.name)
        if m and not pid_alive(int(m.group(1))):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed += 1
    return removed
