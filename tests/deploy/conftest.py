"""Checks of the deployment files under ``deploy/``, the Dockerfile and the entrypoint.

The tools come from packages: hadolint, docker-compose, kubernetes-validate and a Helm library
from the ``dev`` extra (PyPI wheels), promtool and prometheus from Debian (``.ci/prometheus.sh``).
A missing tool skips its tests, except in CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MONITORING = DEPLOY / "monitoring"
CHART = DEPLOY / "helm" / "llmos"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(what: str, how: str) -> None:
    """Skip (fail in CI) for a tool this machine lacks."""
    if in_ci():
        pytest.fail(f"CI must have {what} ({how})")
    pytest.skip(f"no {what} ({how})")


def tool(name: str, how: str) -> str:
    """The path of executable ``name``: beside this Python (the venv's scripts), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        missing(name, how)
        raise AssertionError("unreachable")
    return found


PIP_TOOLS = "scripts/setup dev installs it"
DEBIAN_PROMETHEUS = "apt-get install prometheus; .ci/prometheus.sh"
