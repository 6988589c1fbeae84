"""A process killed (SIGKILL) in the middle of an import leaves no blob and no manifest row."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from llmos.config import load_config
from llmos.registry import open_registry

from .helpers import write_gguf

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from llmos.config import load_config
    from llmos.registry import open_registry

    registry = open_registry(load_config())

    def slow_write(f, data):
        f.write(data[:16]); f.flush()
        time.sleep(60)  # killed here, mid-write

    registry.blobs.write_fn = slow_write
    registry.import_file(Path(sys.argv[1]), "victim:1")
    """
)


def test_killed_import_leaves_nothing(llmos_home: Path, tmp_path: Path) -> None:
    model = write_gguf(tmp_path / "m.gguf")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(model)], env=dict(os.environ))
    tmp = llmos_home / "tmp"
    try:
        deadline = time.monotonic() + 60
        while not (tmp.is_dir() and any(p.suffix == ".partial" for p in tmp.iterdir())):
            assert child.poll() is None, "the child exited before writing"
            assert time.monotonic() < deadline, "the child never started writing"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert [p.name for p in tmp.iterdir()] != []  # the crash left its temp file behind...

    registry = open_registry(load_config())  # ...which the next start removes
    assert list(tmp.iterdir()) == []
    assert registry.list() == [] and registry.blobs.digests() == []
