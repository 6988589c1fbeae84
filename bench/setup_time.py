"""Time README's first command, ``./scripts/serve``, from a clean tree to the first chat answer.

A clean export of ``--ref`` (``git archive``) runs ``./scripts/serve`` with every cache empty:
a fresh ``.venv``, a fresh pip cache (``PIP_CACHE_DIR``), a fresh llmos wheel cache
(``XDG_CACHE_HOME``), a fresh ``LLMOS_HOME`` and a free loopback port. The scripts run under bash's
xtrace (sent to a pipe of its own), so each stage is timed from the moment bash starts its command,
with or without stage lines of the script's own: the same measurement for the old script and the
new. When the server answers ``/ready``, one chat request is sent; its answer ends the run.

The machine may be shared, so each stage's CPU time is measured as well as its wall time: the
CPU seconds of the whole process tree (live processes and the children they reaped), sampled
every second. CPU time hardly depends on what else runs; on an idle machine a compile on ``n``
cores takes about its CPU time divided by ``n``.

    python bench/setup_time.py --ref main --label before
    python bench/setup_time.py --ref HEAD --label after

Each run is stored under its label in ``bench/results/setup_time.json`` and all runs are written
to ``bench/results/setup_time.md``, with the load average (``/proc/loadavg``) before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
COMMAND = "./scripts/serve"
QUESTION = "Name three primary colors."

# (stage, where the marker appears, pattern): a stage starts at the first match of its marker
# and ends where the next stage starts. "trace" lines are the commands bash runs (xtrace).
MARKERS: tuple[tuple[str, str, str], ...] = (
    ("create the virtual environment", "trace", r"-m venv \.venv"),
    ("upgrade pip", "trace", r"pip install .*--upgrade pip"),
    ("build llama-cpp-python (llama.cpp from source)", "trace", r"pip wheel .*llama-cpp-python"),
    ("install the llama-cpp-python wheel", "trace", r"pip install .*llama_cpp_python-.*\.whl"),
    ("install llmos and its dependencies", "trace", r"pip install .*-e \.$|pip install .*-e \.\["),
    ("start the server", "trace", r"llmos serve"),
    ("pull the default model", "ready", r"pulling the default model"),
    ("load the default model", "ready", r"loading the default model"),
    ("answer the first chat", "ready", r"^ready$"),
)


@dataclass
class Run:
    label: str
    ref: str
    commit: str
    started_at: str
    load_before: str
    load_after: str = ""
    events: list[tuple[float, str, str]] = field(default_factory=list)
    answer_at: float | None = None
    answer: str = ""
    exit_note: str = ""
    cpu: list[tuple[float, float]] = field(default_factory=list)
    """(seconds since the start, CPU seconds of the process tree so far)."""

    def cpu_at(self, t: float) -> float:
        return max((c for s, c in self.cpu if s <= t), default=0.0)

    def stages(self) -> list[dict[str, Any]]:
        starts: list[tuple[str, float]] = []
        for stage, source, pattern in MARKERS:
            rx = re.compile(pattern)
            hit = next((t for t, src, line in self.events if src == source and rx.search(line)), None)
            if hit is not None:
                starts.append((stage, hit))
        starts.sort(key=lambda s: s[1])
        out: list[dict[str, Any]] = []
        for i, (stage, t0) in enumerate(starts):
            t1 = starts[i + 1][1] if i + 1 < len(starts) else self.answer_at
            out.append(
                {
                    "stage": stage,
                    "start_s": round(t0, 1),
                    "seconds": None if t1 is None else round(t1 - t0, 1),
                    "cpu_s": None if t1 is None else round(self.cpu_at(t1) - self.cpu_at(t0), 1),
                }
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "ref": self.ref,
            "commit": self.commit,
            "started_at": self.started_at,
            "load_before": self.load_before,
            "load_after": self.load_after,
            "machine": {"cpus": os.cpu_count(), "cpu": _cpu_model(), "python": platform.python_version()},
            "first_answer_s": None if self.answer_at is None else round(self.answer_at, 1),
            "first_answer_cpu_s": None if self.answer_at is None else round(self.cpu_at(self.answer_at), 1),
            "answer": self.answer,
            "exit_note": self.exit_note,
            "stages": self.stages(),
            "output": [[round(t, 1), src, line] for t, src, line in self.events if src == "out"][-200:],
        }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _export(ref: str, dest: Path) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", ref], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return commit


def _tree_cpu(root: psutil.Process) -> float:
    """CPU seconds of ``root`` and its descendants, counting the children each has reaped."""
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def _sample_cpu(proc: subprocess.Popen[bytes], t0: float, run: Run, lock: threading.Lock) -> None:
    try:
        root = psutil.Process(proc.pid)
    except psutil.Error:
        return
    while proc.poll() is None:
        try:
            cpu = _tree_cpu(root)
        except psutil.Error:
            break
        with lock:
            run.cpu.append((time.monotonic() - t0, max(cpu, run.cpu[-1][1] if run.cpu else 0.0)))
        time.sleep(1.0)


def _reader(stream: Any, source: str, t0: float, run: Run, lock: threading.Lock, echo: bool) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip("\r\n")
        with lock:
            run.events.append((time.monotonic() - t0, source, line))
        if echo:
            print(f"[{time.monotonic() - t0:7.1f}s {source}] {line}", flush=True)


def measure(ref: str, label: str, *, timeout: float, keep: bool, echo: bool) -> Run:
    root = Path(tempfile.mkdtemp(prefix="llmos-setup-time-"))
    repo = root / "repo"
    repo.mkdir()
    commit = _export(ref, repo)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PIP_NO_CACHE_DIR")}
    env.update(
        PIP_CACHE_DIR=str(root / "pip-cache"),
        XDG_CACHE_HOME=str(root / "cache"),
        LLMOS_HOME=str(root / "home"),
        LLMOS_PORT=str(port),
        BASH_ENV=str(root / "trace.sh"),
    )
    # Only the repository's scripts are traced: exporting SHELLOPTS would also hand their
    # `set -u` to every bash script they start (pyenv's shims among them).
    (root / "trace.sh").write_text('case "$0" in */scripts/*|scripts/*) set -x ;; esac\n')
    trace_r, trace_w = os.pipe()
    env["BASH_XTRACEFD"] = str(trace_w)
    run = Run(label, ref, commit, datetime.now(UTC).isoformat(timespec="seconds"), _loadavg())
    lock = threading.Lock()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [COMMAND],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        pass_fds=(trace_w,),
        start_new_session=True,
    )
    os.close(trace_w)
    readers = [
        threading.Thread(target=_reader, args=(proc.stdout, "out", t0, run, lock, echo), daemon=True),
        threading.Thread(
            target=_reader, args=(os.fdopen(trace_r, "rb"), "trace", t0, run, lock, False), daemon=True
        ),
    ]
    readers.append(threading.Thread(target=_sample_cpu, args=(proc, t0, run, lock), daemon=True))
    for r in readers:
        r.start()
    base = f"http://127.0.0.1:{port}"
    last_detail = ""
    try:
        with httpx.Client(timeout=5.0) as http:
            while time.monotonic() - t0 < timeout:
                if proc.poll() is not None:
                    run.exit_note = f"{COMMAND} exited with {proc.returncode} before answering"
                    break
                try:
                    r = http.get(f"{base}/ready")
                except httpx.HTTPError:
                    time.sleep(1.0)
                    continue
                body = r.json()
                detail = "ready" if r.status_code == 200 else str(body.get("detail") or body.get("status"))
                if detail != last_detail:
                    with lock:
                        run.events.append((time.monotonic() - t0, "ready", detail))
                    if echo:
                        print(f"[{time.monotonic() - t0:7.1f}s ready] {detail}", flush=True)
                    last_detail = detail
                if r.status_code == 200:
                    chat = http.post(
                        f"{base}/v1/chat/completions",
                        json={
                            "model": "smollm2:135m",
                            "messages": [{"role": "user", "content": QUESTION}],
                            "max_tokens": 48,
                        },
                        timeout=300.0,
                    )
                    run.answer_at = time.monotonic() - t0
                    choice = chat.json().get("choices", [{}])[0]
                    run.answer = str(choice.get("message", {}).get("content", chat.text))
                    break
                time.sleep(0.5)
            else:
                run.exit_note = f"no answer within {timeout:.0f} s"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for r in readers:
            r.join(5)
        run.load_after = _loadavg()
        if keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return run


def idle_estimate(run: dict[str, Any]) -> float | None:
    """The time to the first answer on idle cores, from a run on a busy machine (see render)."""
    stages = run["stages"]
    if run["first_answer_s"] is None or any(s["seconds"] is None for s in stages):
        return None
    build = [s for s in stages if s["stage"].startswith("build llama-cpp-python")]
    if not build or build[0].get("cpu_s") is None:
        return None
    others = sum(s["seconds"] for s in stages if s is not build[0])
    return float(build[0]["cpu_s"]) / int(run["machine"]["cpus"]) + others


def render(results: dict[str, Any]) -> str:
    lines = [
        "# Time to the first answer: README's first command on a fresh machine",
        "",
        f"Command: `python bench/setup_time.py --ref <ref> --label <label>`, which runs `{COMMAND}` in a clean",
        "export of the ref with an empty pip cache, an empty llmos wheel cache, a fresh `.venv` and a fresh",
        "`LLMOS_HOME`, and asks the default model one question once `/ready` answers 200. Stages are timed",
        "from bash's own trace of the scripts (the same for every version of them). The load average",
        "(1, 5, 15 min) is the machine's, shared with other work, read before and after the run.",
        "",
    ]
    for label, run in results.items():
        first = run["first_answer_s"]
        lines += [
            f"## {label}: {run['ref']} ({run['commit'][:10]}), {run['started_at']}",
            "",
            f"Machine: {run['machine']['cpus']} CPUs ({run['machine']['cpu']}), Python {run['machine']['python']}; "
            f"load {run['load_before']} before, {run['load_after']} after.",
            "",
            "| stage | starts at (s) | wall s | CPU s |",
            "| --- | ---: | ---: | ---: |",
        ]
        for s in run["stages"]:
            secs = "-" if s["seconds"] is None else f"{s['seconds']:.1f}"
            cpu = "-" if s.get("cpu_s") is None else f"{s['cpu_s']:.1f}"
            lines.append(f"| {s['stage']} | {s['start_s']:.1f} | {secs} | {cpu} |")
        total = "no answer" if first is None else f"**{first:.1f} s ({first / 60:.1f} min)**"
        if run.get("first_answer_cpu_s") is not None:
            total += f", {run['first_answer_cpu_s']:.0f} CPU s in all"
        lines += ["", f"First answer after {total}: {run['answer'][:120]!r}"]
        idle = idle_estimate(run)
        if idle is not None:
            lines += [
                "",
                f"On {run['machine']['cpus']} idle cores: about **{idle:.0f} s ({idle / 60:.1f} min)** — the compile's "
                "CPU seconds divided by the cores (ninja keeps them all busy), plus the other stages' wall "
                "times as measured (upper bounds: they were slowed by the same load).",
            ]
        if run["exit_note"]:
            lines.append(f"Note: {run['exit_note']}")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", default="HEAD", help="git ref to export and set up (default HEAD)")
    ap.add_argument("--label", default="after", help="name of this run in the results")
    ap.add_argument("--timeout", type=float, default=5400.0, help="seconds before giving up")
    ap.add_argument("--keep", action="store_true", help="keep the temporary tree (venv, caches, home)")
    ap.add_argument("--quiet", action="store_true", help="do not echo the command's output")
    ap.add_argument("--results", type=Path, default=RESULTS / "setup_time.json")
    args = ap.parse_args()

    run = measure(args.ref, args.label, timeout=args.timeout, keep=args.keep, echo=not args.quiet)
    results: dict[str, Any] = json.loads(args.results.read_text()) if args.results.exists() else {}
    results[args.label] = run.to_json()
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    args.results.with_suffix(".md").write_text(render(results))
    for s in run.stages():
        print(f"{s['stage']:<50} {s['seconds']} s, {s['cpu_s']} CPU s")
    print(f"first answer: {run.answer_at}")


if __name__ == "__main__":
    main()
