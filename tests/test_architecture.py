"""The import contracts of ``pyproject.toml`` (ARCHITECTURE.md's layers) hold, and break when
someone adds an upward import, a sideways one between siblings, or a circle (a
``TYPE_CHECKING``-only one included).

Each negative case copies the package's modules into a temporary tree, adds one import, and
runs ``lint-imports`` with the project's own configuration over the copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "llmos"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the project's contracts over the ``llmos`` package found in ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package's Python modules, to add one import to at a time."""
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(SRC, src / "llmos", ignore=shutil.ignore_patterns("__pycache__", "ui"))
    return src


def add_import(tree: Path, module: str, line: str) -> None:
    path = tree / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + "\n" + line + "\n")


def test_the_contracts_hold_for_the_tree_as_it_is(tree: Path) -> None:
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # upward: storage below the services it serves
        ("llmos.storage.db", "import llmos.registry.registry", "Dependencies point down the layers"),
        # upward and only for the type checker: still an edge
        (
            "llmos.domain.manifest",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import llmos.storage.manifests",
            "Dependencies point down the layers",
        ),
        # sideways between sibling services
        ("llmos.data.service", "import llmos.registry.registry", "Dependencies point down the layers"),
        # the engine never imports the scheduler
        ("llmos.engine.base", "import llmos.scheduler.request", "Dependencies point down the layers"),
        # a circle inside one package
        ("llmos.storage.db", "import llmos.storage.manifests", "No import circles"),
        # the task pipelines see the kernel through a protocol: handing them the Kernel is a circle
        (
            "llmos.kernel.tasks",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import llmos.kernel.kernel",
            "No import circles",
        ),
        # the SDK is a client of the server, never a part of it
        ("llmos.sdk.types", "import llmos.storage.db", "The SDK imports nothing of the server side"),
        # ORM rows stay in storage
        ("llmos.registry.names", "import llmos.storage.rows", "ORM rows never leave storage"),
    ],
)
def test_a_new_forbidden_import_breaks_a_contract(tree: Path, module: str, line: str, contract: str) -> None:
    path = tree / (module.replace(".", "/") + ".py")
    before = path.read_text()
    add_import(tree, module, line)
    try:
        result = lint_imports(tree)
    finally:
        path.write_text(before)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout
