"""Local files: the source of ``llmos import PATH``."""

from __future__ import annotations

from pathlib import Path

from llmos.errors import InvalidModelFile, NotFound


def open_local_file(path: Path) -> Path:
    """``path`` resolved, if it is a readable regular file. Raises NotFound or InvalidModelFile."""
    p = path.expanduser()
    if not p.exists():
        raise NotFound(f"no such file: {p}; check the path you gave to 'llmos import'", param="path")
    if not p.is_file():
        raise InvalidModelFile(f"{p} is not a regular file; give the path of a .gguf file", param="path")
    try:
        with p.open("rb"):
            pass
    except OSError as exc:
        raise InvalidModelFile(f"cannot read {p}: {exc.strerror}", param="path") from exc
    return p.resolve()
