"""Write ``src/llmos/sdk/async_resources.py`` from ``sync_resources.py`` (the SDK's async shell is
the sync one, awaited: written by this script, never by hand).

    python scripts/unasync_sdk.py            # rewrite it
    python scripts/unasync_sdk.py --check    # exit 1 when it is not what the sync shell implies

A method that runs a call becomes ``async def`` and awaits it; one that returns a stream or a
page iterator stays ``def`` and returns the async iterator. ``tests/sdk/test_shells.py`` runs
``--check``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SDK = Path(__file__).resolve().parent.parent / "src" / "llmos" / "sdk"
SOURCE = SDK / "sync_resources.py"
TARGET = SDK / "async_resources.py"
HEADER = '''"""The resources of :class:`~llmos.sdk.AsyncClient`: the methods of ``sync_resources.py``,
awaited. Written by ``scripts/unasync_sdk.py`` from ``sync_resources.py``: edit that file and
run the script, never this one."""
'''


def unasync(source: str) -> str:
    body = source[source.index('"""', 3) + 3 :]  # without the sync module's docstring
    classes = re.findall(r"^class (\w+)", body, flags=re.M)
    for name in classes:
        body = re.sub(rf"\b{name}\b(?=[(:])", f"Async{name}", body)
    body = re.sub(r"\bRunner\b", "AsyncRunner", body)
    body = body.replace("from llmos.sdk._sync import", "from llmos.sdk._async import")
    body = re.sub(r"\bIterator\b", "AsyncIterator", body)
    body = body.replace("_core.drain(", "await _core.adrain(")
    body = body.replace("self._r.run(", "await self._r.run(")
    methods = re.split(r"(?=^    def )", body, flags=re.M)
    out = [
        m.replace("    def ", "    async def ", 1) if "await " in m.split("\n\n")[0] else m for m in methods
    ]
    return _formatted(HEADER + "".join(out))


def _formatted(code: str) -> str:
    """``code`` with its imports sorted, as ``ruff format`` writes it (the check compares this)."""
    ruff = str(Path(sys.executable).with_name("ruff"))
    for args in (["check", "--select", "I", "--fix-only", "--quiet"], ["format"]):
        code = subprocess.run(
            [ruff, *args, "--stdin-filename", str(TARGET), "-"],
            input=code,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return code


def main() -> int:
    wanted = unasync(SOURCE.read_text())
    if "--check" in sys.argv[1:]:
        if TARGET.read_text() != wanted:
            print(f"{TARGET} is stale: run python scripts/unasync_sdk.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
