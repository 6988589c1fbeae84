"""Does an llmos server stay as fast as it started? The same cells, again and again, on one server.

One ``llmos serve`` (16 slots, n_ctx 8192, the default model) runs a sequence of closed-loop
streaming chat cells (128 tokens, ``ignore_eos``) at the concurrencies given, in that order, on
one server process; each cell reports its throughput and the CPU seconds per 1,000 streamed
tokens of the server process and of the engine core. A cell that repeats an earlier one should
repeat its figures. ``--llmos-src`` runs the same sequence on other checkouts' ``src`` folders in
the same run (before and after a change), one server each.

This found that throughput fell the longer a server ran (4 streams from 112 to 64 tok/s within
five minutes, run ``before-after``): scattered KV slots split llama.cpp's decodes
(``bench/ubatch_split.py``).

    .venv/bin/python bench/server_aging.py --label after
    .venv/bin/python bench/server_aging.py --label before-after --llmos-src /tmp/old/src src

Writes ``bench/results/server_aging.json`` (runs by label) and ``server_aging.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llmos.benchmark import run_benchmark
from peer_llama_server import sample_cpu
from peer_report import cpu_delta
from peer_servers import chat_workload, fetch_model, llmos_server, md_table

RESULTS = Path(__file__).resolve().parent / "results"
CELLS = (4, 16, 32, 16, 4, 16, 32, 4)


def code_of(src: Path | None) -> str:
    where = src.parent if src is not None else Path(__file__).resolve().parent.parent
    out = subprocess.run(
        ["git", "-C", str(where), "log", "-1", "--format=%h %s"], capture_output=True, text=True
    )
    return out.stdout.strip()[:100] or str(where)


def run_one(src: Path | None, args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    rows = []
    with llmos_server(fetch_model(), work, args.threads, pythonpath=src) as server:
        started = time.monotonic()
        for i, c in enumerate(args.cells):
            before = sample_cpu(server.proc.pid)
            load = chat_workload(
                server.url,
                stream=True,
                concurrency=c,
                requests=c * args.per_client,
                prompt_words=64,
                max_tokens=128,
                seed=100 + i,
            )
            result = run_benchmark(load)
            server_s, core_s = cpu_delta(before, sample_cpu(server.proc.pid))
            tokens = sum(r.output_tokens for r in result.records)
            row = {
                "cell": i,
                "concurrency": c,
                "at_s": round(time.monotonic() - started),
                "tok_s": round(tokens / result.duration_s, 1),
                "server_cpu_s_per_1k": round(server_s * 1000 / max(1, tokens), 3),
                "core_cpu_s_per_1k": round(core_s * 1000 / max(1, tokens), 2),
                "load_1min": round(os.getloadavg()[0], 2),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def render(runs: dict[str, Any]) -> str:
    lines = [
        "# Server aging: the same cells again and again on one server",
        "",
        "Made by `bench/server_aging.py` (its docstring says how). Each row is one cell on one",
        "server process, in the order run; CPU is seconds per 1,000 streamed tokens.",
        "",
    ]
    for label, run in runs.items():
        lines += [
            f"## Run `{label}`",
            "",
            f"- command: `{run['command']}`",
            f"- machine: {run['machine']}",
            "",
        ]
        for code in run["servers"]:
            lines += [f"### llmos at `{code['code']}`", ""]
            rows = [
                [
                    str(r["cell"]),
                    str(r["concurrency"]),
                    str(r["at_s"]),
                    f"{r['tok_s']:.1f}",
                    f"{r['server_cpu_s_per_1k']:.2f}",
                    f"{r['core_cpu_s_per_1k']:.1f}",
                    f"{r['load_1min']:.1f}",
                ]
                for r in code["cells"]
            ]
            head = ["cell", "streams", "started at (s)", "tok/s", "server CPU", "core CPU", "load"]
            lines += [*md_table(head, rows), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--label", default="run")
    ap.add_argument(
        "--cells", type=int, nargs="+", default=list(CELLS), help="concurrency of each cell, in order"
    )
    ap.add_argument("--per-client", type=int, default=2, help="requests per cell = this x concurrency")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--llmos-src", type=Path, nargs="+", default=None, help="checkouts' src folders to compare"
    )
    args = ap.parse_args()
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "llmos-server-aging"
    work.mkdir(exist_ok=True)
    servers = []
    for src in args.llmos_src or [None]:
        print(f"llmos at {code_of(src)}", flush=True)
        servers.append({"code": code_of(src), "cells": run_one(src, args, work)})
    out = RESULTS / "server_aging.json"
    runs = json.loads(out.read_text()) if out.exists() else {}
    uname = os.uname()
    runs[args.label] = {
        "command": "python bench/server_aging.py " + " ".join(sys.argv[1:]),
        "machine": f"{uname.machine}, {os.cpu_count()} CPUs, {uname.release}",
        "servers": servers,
    }
    RESULTS.mkdir(exist_ok=True)
    out.write_text(json.dumps(runs, indent=2) + "\n")
    (RESULTS / "server_aging.md").write_text(render(runs) + "\n")


if __name__ == "__main__":
    main()
