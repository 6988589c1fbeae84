"""How long the CLI takes to answer: ``llmos --help``, ``llmos --version`` and ``llmos list``.

Each command runs ``--runs`` times in a fresh interpreter (this venv's Python, the sources of
``--ref`` exported by ``git archive`` and put first on ``PYTHONPATH``), against a fresh
``LLMOS_HOME`` and a closed port (no server answers: since issue 18 ``list`` answers, exit code 6,
that none runs and how to start one; before, it read the local registry, made and migrated by
one untimed run first; every command also runs once untimed, so that Python has
written its bytecode caches, as on any installation: ``PYTHONDONTWRITEBYTECODE`` is unset for the
runs). Reported per command: the median wall time and the
median CPU time (user + system, which depends less on what else the machine runs), and the
import time of ``llmos.cli.app`` (``python -X importtime``, its cumulative microseconds).

    python bench/cli_startup.py --ref 72f96c4 --label before
    python bench/cli_startup.py --ref HEAD --label after

Results: ``bench/results/cli_startup.json`` (every label) and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
COMMANDS: tuple[tuple[str, ...], ...] = (("--help",), ("--version",), ("list",))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


ANSWERS = (0, 6)
"""Exit codes of a command that answered: 6 is "no llmos server is running" (``list``)."""


def _run(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode not in ANSWERS:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")


def _time(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    cpu0, t0 = _children_cpu(), time.perf_counter()
    _run(argv, env)
    return time.perf_counter() - t0, _children_cpu() - cpu0


def _import_us(env: dict[str, str]) -> int:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import llmos.cli.app"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    last = [line for line in done.stderr.splitlines() if line.rstrip().endswith("| llmos.cli.app")][-1]
    return int(last.split("|")[1])


def measure(ref: str, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="llmos-cli-startup-") as tmp:
        root = Path(tmp)
        commit = subprocess.run(
            ["git", "rev-parse", ref], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout.strip()
        archive = subprocess.run(["git", "archive", commit, "src"], cwd=ROOT, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
        env = {
            **os.environ,
            "PYTHONPATH": str(root / "src"),
            "LLMOS_HOME": str(root / "home"),
            "LLMOS_BASE_URL": f"http://127.0.0.1:{_closed_port()}",
        }
        env.pop("LLMOS_DATABASE_URL", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        where = subprocess.run(
            [sys.executable, "-c", "import llmos; print(llmos.__file__)"],
            env=env,
            check=True,
            capture_output=True,
        )
        if not where.stdout.decode().startswith(str(root)):
            raise SystemExit(f"the export of {ref} is not what Python imports: {where.stdout.decode()}")
        _run([sys.executable, "-m", "llmos", "list"], env)
        commands: dict[str, Any] = {}
        for cmd in COMMANDS:
            _run([sys.executable, "-m", "llmos", *cmd], env)
            walls, cpus = zip(
                *(_time([sys.executable, "-m", "llmos", *cmd], env) for _ in range(runs)), strict=True
            )
            commands[" ".join(cmd)] = {
                "wall_s": round(statistics.median(walls), 3),
                "cpu_s": round(statistics.median(cpus), 3),
            }
        imports = [_import_us(env) for _ in range(runs)]
        shutil.rmtree(root / "home", ignore_errors=True)
    return {
        "ref": ref,
        "commit": commit,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "runs": runs,
        "commands": commands,
        "import_cli_app_s": round(statistics.median(imports) / 1e6, 3),
    }


def render(results: dict[str, Any]) -> str:
    labels = list(results)
    lines = [
        "# CLI start-up: the time to answer a command",
        "",
        "Command: `python bench/cli_startup.py --ref <ref> --label <label>` (see its docstring): medians of",
        "fresh interpreters; no server running, so `list` reads the local registry (before issue 18) or",
        "answers that no server runs and how to start one (from issue 18 on: the CLI is the SDK's user).",
        "CPU time is user + system; the machine is shared (load average 1/5/15 min at each run).",
        "Goals (issue 17): `llmos --help` ≤ 0.5 s, `llmos list` ≤ 1 s.",
        "",
        "| | " + " | ".join(f"{label} ({results[label]['commit'][:10]})" for label in labels) + " |",
        "| --- |" + " ---: |" * len(labels),
    ]
    for cmd in [" ".join(c) for c in COMMANDS]:
        cells = [
            f"{results[label]['commands'][cmd]['wall_s']:.2f} s ({results[label]['commands'][cmd]['cpu_s']:.2f} CPU s)"
            for label in labels
        ]
        lines.append(f"| `llmos {cmd}` | " + " | ".join(cells) + " |")
    lines.append(
        "| `import llmos.cli.app` | "
        + " | ".join(f"{results[x]['import_cli_app_s']:.2f} s" for x in labels)
        + " |"
    )
    lines.append("| load average | " + " | ".join(results[x]["load"] for x in labels) + " |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", default="HEAD")
    ap.add_argument("--label", default="after")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--results", type=Path, default=RESULTS / "cli_startup.json")
    args = ap.parse_args()
    run = measure(args.ref, args.runs)
    results: dict[str, Any] = json.loads(args.results.read_text()) if args.results.exists() else {}
    results[args.label] = run
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    args.results.with_suffix(".md").write_text(render(results))
    print(json.dumps(run, indent=2))


if __name__ == "__main__":
    main()
