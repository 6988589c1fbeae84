"""llmos against llama.cpp's own ``llama-server``, through HTTP, in one run (issue 15, point 5).

``llama-server`` is built from the llama.cpp that llmos's llama-cpp-python sdist vendors, with our
wheel's compile options, and cached outside the repository (``llama_server_build.py``). Both
servers then take the same load, one after the other in interleaved rounds (the order rotates
each round; every server is restarted each round): the same GGUF (SmolLM2-135M-Instruct Q4_1),
the same threads, 16 slots and n_ctx 8192 (``llama-server -np 16 -c 8192``, llmos's defaults),
streaming chat completions of exactly 128 tokens (``ignore_eos``), greedy, a closed loop at
concurrency 1, 4, 16 and 32 — through llmos's own load generator (``llmos.benchmark``); the
cells run in ascending order in even rounds and descending in odd ones, and every cell reads
prompts of its own (the same for every server in a round: ``cell_seed``). llmos
runs twice: on its default weights (``LLMOS_CPU_WEIGHTS=auto``) and on the file as stored
(``native``, what llama-server reads).

Per cell: aggregate tok/s, TTFT p50/p90, streams cut short, and CPU seconds per 1,000 streamed
tokens of the server process and (llmos) of its engine process(es), from psutil samples of the
process tree before and after the cell. Medians over rounds; ratios to llama-server.

    python bench/peer_llama_server.py --label before [--rounds 2] [--note TEXT]
    python bench/peer_llama_server.py --label after --llmos-src /path/to/checkout/src

Writes ``bench/results/peer_llama_server.{md,json}`` (each label is one run in them: an "after"
run is stored beside the "before" baseline, never over it) and ``peer_llama_server_<label>.png``,
after every round. ``--render`` only rewrites the Markdown from the JSON (after merging two
branches' runs into one JSON, say).
Run it at normal priority; the results record the machine's load before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil

from llama_server_build import LLAMA_CPP_PYTHON, ensure_llama_server, server_version
from llmos.benchmark import Workload, run_benchmark
from peer_report import (
    PEER,
    CpuSample,
    cell_stats,
    cpu_delta,
    goals,
    markdown,
    medians,
    merge_run,
    plot,
    ratios,
)
from peer_servers import (
    MODEL_NAME,
    Server,
    chat_workload,
    fetch_model,
    free_port,
    llmos_server,
    start,
    stop,
    wait_ready,
)

CONCURRENCY = (1, 4, 16, 32)
THREADS = 2
RESULTS = Path(__file__).parent / "results"
STEM = "peer_llama_server"


@dataclass(frozen=True)
class Contender:
    """One server configuration of the run."""

    key: str
    env: dict[str, str] = field(default_factory=dict)
    """``LLMOS_*`` settings (llmos only)."""


CONTENDERS = (
    Contender(PEER),
    Contender("llmos", {"LLMOS_CPU_WEIGHTS": "auto"}),
    Contender("llmos-native", {"LLMOS_CPU_WEIGHTS": "native"}),
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--label", default="run", help="the run's name in the results (e.g. before, after)")
    ap.add_argument("--model", type=Path, default=None, help="GGUF path (default: fetched like the tests)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY))
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds (medians over them)")
    ap.add_argument(
        "--per-client", type=int, default=2, help="requests per cell = per-client x concurrency ..."
    )
    ap.add_argument("--min-requests", type=int, default=6, help="... but at least this many")
    ap.add_argument("--warmup", type=int, default=2, help="unmeasured requests after each server start")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--prompt-words", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=THREADS, help="llama.cpp threads, both servers")
    ap.add_argument("--only", nargs="+", choices=[c.key for c in CONTENDERS], default=None)
    ap.add_argument("--llmos-src", type=Path, default=None, help="run llmos from this checkout's src folder")
    ap.add_argument(
        "--sdist", type=Path, default=None, help="a llama-cpp-python sdist (default: pip download)"
    )
    ap.add_argument("--note", default="", help="a line saying under which conditions this ran")
    ap.add_argument(
        "--render",
        action="store_true",
        help="only rewrite the Markdown from the JSON (e.g. after merging runs)",
    )
    args = ap.parse_args(argv)
    positive = ("rounds", "per_client", "min_requests", "max_tokens", "prompt_words", "threads")
    for name in positive:
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", args.label):
        ap.error("--label must be letters, digits, '.', '_' and '-' only (it names the plot file)")
    if args.warmup < 0:
        ap.error("--warmup must not be negative")
    if any(c < 1 for c in args.concurrency):
        ap.error("--concurrency values must be at least 1")
    if args.llmos_src is not None and not (args.llmos_src / "llmos" / "__init__.py").is_file():
        ap.error(f"--llmos-src {args.llmos_src} has no llmos package (pass a checkout's src folder)")
    return args


def requests_for(concurrency: int, per_client: int, min_requests: int) -> int:
    return max(min_requests, per_client * concurrency)


def round_order(contenders: Sequence[Contender], round_index: int) -> list[Contender]:
    """The servers in round ``round_index``: rotated by one each round, so none always runs first
    (on a cold machine) or last (after the others warmed it)."""
    k = round_index % len(contenders)
    return [*contenders[k:], *contenders[:k]]


def concurrency_order(levels: Sequence[int], round_index: int) -> list[int]:
    """The cells of round ``round_index`` on one started server: ascending in even rounds,
    descending in odd ones, so no concurrency always runs last, on a server (and a machine) that
    has been busy longest. (With a fixed order, 32 streams always came last: on this shared VM,
    where the other work's load grew during a run, 32 streams looked slower than 16, and running
    32 first made it faster than 16 on the same server.)"""
    ordered = sorted(levels)
    return ordered if round_index % 2 == 0 else ordered[::-1]


def cell_seed(seed: int, round_index: int, concurrency: int) -> int:
    """The prompts' seed of one cell: the same for every server in a round, different for every
    cell and round. With one seed for all cells a server met prompts it had already read in an
    earlier cell (llama-server keeps them in its RAM prompt cache), and a cell's TTFT measured
    the cache rather than prefill, in an order-dependent way."""
    return seed + 1000 * (round_index + 1) + concurrency


def sample_cpu(pid: int) -> CpuSample:
    """CPU seconds so far of ``pid`` and each of its descendants."""
    proc = psutil.Process(pid)

    def total(p: psutil.Process) -> float:
        t = p.cpu_times()
        return float(t.user + t.system)

    children: dict[int, float] = {}
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            children[child.pid] = total(child)
    return CpuSample(total(proc), children)


def client_cpu() -> float:
    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


@contextlib.contextmanager
def llama_server(binary: Path, model: Path, workdir: Path, threads: int) -> Iterator[Server]:
    port = free_port()
    argv = [str(binary), "-m", str(model), "--alias", MODEL_NAME, "-t", str(threads), "-np", "16"]
    argv += ["-c", "8192", "--host", "127.0.0.1", "--port", str(port), "--no-webui"]
    server = start(PEER, argv, os.environ, port, workdir)
    try:
        wait_ready(server, "/health")
        yield server
    finally:
        stop(server)


def workload(url: str, concurrency: int, requests: int, args: argparse.Namespace, seed: int) -> Workload:
    return chat_workload(
        url,
        stream=True,
        concurrency=concurrency,
        requests=requests,
        prompt_words=args.prompt_words,
        max_tokens=args.max_tokens,
        seed=seed,
    )


def measure(server: Server, args: argparse.Namespace, round_index: int) -> list[dict[str, Any]]:
    """Every concurrency on one started server: one cell each."""
    if args.warmup:
        run_benchmark(workload(server.url, 1, args.warmup, args, seed=10_000 + args.seed))
    rows = []
    for c in concurrency_order(args.concurrency, round_index):
        n = requests_for(c, args.per_client, args.min_requests)
        load = os.getloadavg()[0]
        before, client0 = sample_cpu(server.proc.pid), client_cpu()
        result = run_benchmark(workload(server.url, c, n, args, seed=cell_seed(args.seed, round_index, c)))
        after, client1 = sample_cpu(server.proc.pid), client_cpu()
        server_s, engine_s = cpu_delta(before, after)
        cell = cell_stats(
            result.records,
            result.duration_s,
            max_tokens=args.max_tokens,
            server_cpu_s=server_s,
            engine_cpu_s=engine_s if after.children else None,
            client_cpu_s=client1 - client0,
        )
        rows.append(
            {"round": round_index, "server": server.name, "concurrency": c, "load_1min": load, **cell}
        )
        ttft = cell["ttft_ms"]["p50"]
        print(
            f"round {round_index} {server.name:>13} c={c:2}: {cell['tok_s']:6.1f} tok/s, TTFT p50 "
            f"{(ttft or 0) / 1000:6.2f} s, {cell['cut_short']}/{cell['requests']} cut short, "
            f"CPU/1k server {cell['cpu_s_per_1k_tokens']['server'] or 0:.2f} s",
            flush=True,
        )
    return rows


@contextlib.contextmanager
def serve(
    contender: Contender, binary: Path, model: Path, work: Path, args: argparse.Namespace
) -> Iterator[Server]:
    if contender.key == PEER:
        with llama_server(binary, model, work, args.threads) as server:
            yield server
    else:
        with llmos_server(
            model, work, args.threads, name=contender.key, env=contender.env, pythonpath=args.llmos_src
        ) as server:
            yield server


def _run(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        return f"({exc})"
    return done.stdout.strip() or done.stderr.strip()


def machine() -> str:
    model = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    mem = psutil.virtual_memory().total / 2**30
    return f"{model}, {os.cpu_count()} CPUs, {mem:.0f} GiB, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def llmos_code(src: Path | None) -> str:
    """Where the llmos that ran comes from: its checkout and commit (``-dirty`` with changes)."""
    where = src or Path(__file__).resolve().parent.parent
    cmd = ["git", "-C", str(where), "describe", "--always", "--dirty", "--exclude", "*"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    return f"{where} at {done.stdout.strip()}" if done.returncode == 0 else f"{where} (not a git checkout)"


def contender_commands(
    binary: Path, args: argparse.Namespace, contenders: Sequence[Contender]
) -> list[dict[str, str]]:
    out = []
    for c in contenders:
        if c.key == PEER:
            cmd = f"{binary.name} -m MODEL --alias {MODEL_NAME} -t {args.threads} -np 16 -c 8192 --no-webui"
        else:
            env = {
                "LLMOS_N_THREADS": str(args.threads),
                "LLMOS_N_SLOTS": "16",
                "LLMOS_N_CTX": "8192",
                **c.env,
            }
            cmd = " ".join(f"{k}={v}" for k, v in env.items()) + " llmos serve"
        out.append({"key": c.key, "command": cmd})
    return out


def write_results(out: Path, label: str, run: dict[str, Any]) -> None:
    """Store ``run`` under ``label`` in the results (beside other labels' runs) and redraw."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{STEM}.json"
    existing = json.loads(path.read_text()) if path.exists() else None
    doc = merge_run(existing, label, run)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    (out / f"{STEM}.md").write_text(markdown(doc))
    plot(label, run, out / run["plot"])


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.render:
        path = args.out / f"{STEM}.json"
        (args.out / f"{STEM}.md").write_text(markdown(json.loads(path.read_text())))
        return
    model = args.model or fetch_model()
    binary = ensure_llama_server(sdist=args.sdist)
    contenders = [c for c in CONTENDERS if args.only is None or c.key in args.only or c.key == PEER]
    argv_list = list(sys.argv[1:] if argv is None else argv)
    run: dict[str, Any] = {
        "command": shlex.join(["python", "bench/peer_llama_server.py", *argv_list]),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "uptime_before": _run(["uptime"]),
        "note": args.note,
        "versions": (
            f"llmos {llmos_code(args.llmos_src)}; llama-cpp-python {version('llama-cpp-python')} "
            f"(pinned {LLAMA_CPP_PYTHON}); llama-server {server_version(binary)}"
        ),
        "settings": {
            "model": model.name,
            "threads": args.threads,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "requests": {
                str(c): requests_for(c, args.per_client, args.min_requests) for c in args.concurrency
            },
            "max_tokens": args.max_tokens,
            "prompt_words": args.prompt_words,
            "seed": args.seed,
        },
        "servers": contender_commands(binary, args, contenders),
        "plot": f"{STEM}_{args.label}.png",
    }
    cells: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="llmos-peer-") as tmp:
        work = Path(tmp)
        for r in range(args.rounds):
            for contender in round_order(contenders, r):
                with serve(contender, binary, model, work, args) as server:
                    cells += measure(server, args, r)
            # Written after every round: an interrupted run keeps the rounds it finished.
            med = medians(cells)
            rat = ratios(med)
            run.update(
                rounds_done=r + 1,
                finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                uptime_after=_run(["uptime"]),
                cells=cells,
                medians=med,
                ratios=rat,
                goals=goals(med, rat),
            )
            write_results(args.out, args.label, run)
            print(f"round {r} written to {args.out}/{STEM}.{{json,md}} and {run['plot']}", flush=True)


if __name__ == "__main__":
    main()
