"""The CLI imports what a command needs and nothing more: ``llmos --help`` loads neither the
server, the kernel, storage nor the SDK; ``llmos list`` with no server listening says so without
loading the SDK (httpx), storage or the registry. Which modules load is behaviour; how long that
takes is measured by ``bench/cli_startup.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = (
    "import sys\n"
    "from llmos.cli.app import app\n"
    "try:\n"
    "    app(sys.argv[1:])\n"
    "except SystemExit as exc:\n"
    "    print(f'exit {exc.code or 0}')\n"
    "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\n"
)
NEVER = ("fastapi", "uvicorn", "llama_cpp", "numpy", "torch", "jinja2", "llmos.server", "llmos.kernel")


def _modules(args: list[str], env: dict[str, str], exit_code: int = 0) -> set[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and f"exit {exit_code}" in done.stdout, done.stdout + done.stderr
    return {
        line.split(".")[0] if line.split(".")[0] != "llmos" else ".".join(line.split(".")[:2])
        for line in done.stderr.split()
    }


@pytest.fixture
def env(llmos_home: Path) -> dict[str, str]:
    """A fresh home, and LLMOS_BASE_URL at a port where nothing listens (see ``llmos_home``)."""
    return dict(os.environ)


def test_help_imports_no_server_kernel_storage_or_sdk(env: dict[str, str]) -> None:
    loaded = _modules(["--help"], env)
    heavy = {
        *NEVER,
        "sqlalchemy",
        "alembic",
        "httpx",
        "pydantic_settings",
        "llmos.storage",
        "llmos.sdk",
        "llmos.config",
    }
    assert not loaded & heavy, loaded & heavy


def test_list_without_a_server_answers_without_the_sdk_storage_or_registry(env: dict[str, str]) -> None:
    loaded = _modules(["list"], env, exit_code=6)
    heavy = {*NEVER, "sqlalchemy", "alembic", "httpx", "llmos.sdk", "llmos.storage", "llmos.registry"}
    assert not loaded & heavy, loaded & heavy
