"""scripts/progress.py: what a long set-up step prints while it runs (a line per stage is the
script's; this is the progress inside one)."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "progress.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("setup_progress", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_steps_become_progress_lines_with_the_time_left() -> None:
    progress = _module()
    out = io.StringIO()
    r = progress.Reporter("compiling llama.cpp", 200.0, 15.0, out, now=0.0)
    r.feed("-- Configuring done", now=3.0)
    r.tick(now=16.0)  # a heartbeat: nothing counted yet
    r.feed("      [10/80] /usr/bin/c++ -O3 -c ggml.c", now=20.0)  # pip indents the build's output
    r.feed("      [11/80] /usr/bin/c++ -O3 -c ggml-cpu.c", now=21.0)  # within 15 s of the last line
    r.feed("      [40/80] /usr/bin/c++ -O3 -c llama.cpp", now=40.0)
    assert out.getvalue().splitlines() == [
        "  compiling llama.cpp: 0m16s elapsed of about 3m20s",
        "  compiling llama.cpp: 40/80 steps (50%), 0m40s elapsed (about 0m40s left)",
    ]


def test_a_slow_machine_is_told_so_and_pip_packages_are_counted() -> None:
    progress = _module()
    out = io.StringIO()
    r = progress.Reporter("installing packages", 60.0, 15.0, out, now=0.0, packages=True)
    for line in ("Collecting fastapi", "  Downloading fastapi-0.115.whl (95 kB)", "Collecting numpy"):
        r.feed(line, now=1.0)
    r.tick(now=90.0)
    assert (
        out.getvalue()
        == "  installing packages: 2 packages so far, 1m30s elapsed (expected about 1m00s: is the machine busy?)\n"
    )


def test_every_line_goes_to_the_log(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    lines = "".join(f"[{i}/3] step {i}\n" for i in range(1, 4)) + "no newline at the end"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--log", str(log), "--label", "x", "--every", "0"],
        input=lines,
        capture_output=True,
        text=True,
        check=True,
    )
    assert log.read_text() == lines + "\n"
    assert "x: 3/3 steps (100%)" in done.stdout
