"""README's "Using it" section, run as written, in order, against a live server.

The server is README's first command after the set-up: ``llmos serve`` in a fresh
``LLMOS_HOME`` (it pulls and loads the default model before ``/ready``). Every fenced ``bash``
and ``python`` block of the section then runs from the repository root, the shell blocks with
``set -e`` (a failing command fails the test) and no input (interactive commands end at once).
Two things differ from a user's machine, both said here: the server listens on a free port, so
the default address ``127.0.0.1:8470`` in the blocks is replaced by it, and the catalog's
packages come from the test cache (``~/.cache/llmos-tests/wheels``) instead of the index. A
block preceded by ``<!-- requires: module -->`` needs a package the setup does not install; it
is skipped only when that module is missing.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.test_integration_openai import RealServer, _free_port, _wait_ready, stop_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ADDRESS = "127.0.0.1:8470"
_BLOCK = re.compile(
    r"(?:<!-- requires: (?P<requires>[\w.]+) -->\n)?```(?P<lang>bash|python)\n(?P<code>.*?)```", re.S
)


@dataclass(frozen=True)
class Block:
    index: int
    lang: str
    code: str
    requires: str | None

    def __str__(self) -> str:
        return f"{self.index}-{self.lang}"


def using_it_blocks() -> list[Block]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Using it\n", 1)[1].split("\n## ", 1)[0]
    return [
        Block(i, m.group("lang"), m.group("code"), m.group("requires"))
        for i, m in enumerate(_BLOCK.finditer(section))
    ]


BLOCKS = using_it_blocks()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path, gemma3_gguf: Path, minilm_folder: Path
) -> Iterator[RealServer]:
    """``llmos serve`` as ``./scripts/serve`` runs it, in a fresh home; ready once the default
    model is pulled and loaded."""
    home = tmp_path_factory.mktemp("readme") / "home"
    home.mkdir()
    port = _free_port()
    env = {
        **os.environ,
        "LLMOS_HOME": str(home),
        "LLMOS_PORT": str(port),
        "PIP_FIND_LINKS": str(smollm2_gguf.parent / "wheels"),
        "PIP_NO_INDEX": "1",
    }
    for name in ("LLMOS_DATABASE_URL", "LLMOS_API_KEY", "LLMOS_BASE_URL"):
        env.pop(name, None)
    log = home.parent / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmos", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    server = RealServer(f"http://127.0.0.1:{port}", proc, log, home)
    try:
        _wait_ready(server.url, proc, "/ready", limit_s=600)
    except Exception:
        stop_server(server)
        raise RuntimeError(server.logs()) from None
    yield server
    stop_server(server)


def test_the_section_has_the_blocks_it_should() -> None:
    assert [b.lang for b in BLOCKS] == ["bash", "python", "python"]
    assert [b.requires for b in BLOCKS] == [None, None, "openai"]
    assert "source .venv/bin/activate" in BLOCKS[0].code and DEFAULT_ADDRESS in BLOCKS[2].code


@pytest.mark.timeout(1800)  # the shell block pulls two models and indexes docs/ on a shared CI machine
@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_readme_block_runs_as_written(block: Block, server: RealServer) -> None:
    if block.requires and importlib.util.find_spec(block.requires) is None:
        pytest.skip(f"README marks this block as needing {block.requires}, which is not installed")
    port = server.url.rsplit(":", 1)[1]
    code = block.code.replace(DEFAULT_ADDRESS, f"127.0.0.1:{port}")
    env = {**os.environ, "LLMOS_HOME": str(server.home), "LLMOS_BASE_URL": server.url}
    env.pop("LLMOS_API_KEY", None)
    argv = ["bash", "-c", "set -ex\n" + code] if block.lang == "bash" else [sys.executable, "-c", code]
    done = subprocess.run(
        argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1500
    )
    assert done.returncode == 0, (
        f"{done.stdout[-4000:]}\n{done.stderr[-6000:]}\n--- server ---\n{server.logs()}"
    )
    assert done.stdout.strip()
