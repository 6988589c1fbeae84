"""llmos's server side by side with llama-cpp-python's (``python -m llama_cpp.server``) on
SmolLM2-135M-Instruct Q4_1, one after the other in the same run, on free loopback ports.

Each server gets the same load from ``llmos bench``'s library: the chat endpoint, a closed loop at
concurrency 1, 4 and 16, streaming and not, seeded ~64-word prompts, 128 output tokens (greedy;
``ignore_eos`` for llmos, ``min_tokens`` for llama-cpp-python: the same exact length for both).
Reported per run: aggregate output tokens/s (completed requests), p50/p95 end-to-end latency,
TTFT, and how many requests completed: llama-cpp-python's server ends a running stream early
(``[DONE]`` with no finish reason) when another request arrives; those count as failed.

    python bench/peer_llamacpp_server.py [--model PATH] [--out bench/results] [--note TEXT]

Needs llama-cpp-python's server extra (``pip install -e '.[bench]'``) and matplotlib.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

from llmos.benchmark import Workload, run_benchmark, summarize
from llmos.benchmark.plot import pyplot
from peer_servers import (
    DEFAULT_MODEL,
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

CONCURRENCY = (1, 4, 16)
THREADS = 2
"""llama.cpp threads for both servers: the machine's 2 cores."""
LLMOS, LLAMACPP = "llmos", "llama-cpp-python"
LLAMACPP_QUEUED = "llama-cpp-python (interrupt_requests off)"


@contextlib.contextmanager
def llamacpp_server(model: Path, workdir: Path, threads: int, *, interrupt: bool = True) -> Iterator[Server]:
    """Its defaults, but the threads; ``interrupt=False`` turns off ``interrupt_requests`` (on by
    default: a new request ends the running stream) so that streams queue instead."""
    port = free_port()
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", MODEL_NAME]
    argv += ["--n_ctx", "2048", "--n_threads", str(threads), "--n_threads_batch", str(threads)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    name = LLAMACPP
    if not interrupt:
        argv += ["--interrupt_requests", "False"]
        name = LLAMACPP_QUEUED
    server = start(name, argv, dict(os.environ), port, workdir)
    try:
        wait_ready(server, "/v1/models")
        yield server
    finally:
        stop(server)


def workload(url: str, stream: bool, concurrency: int, requests: int, args: argparse.Namespace) -> Workload:
    return chat_workload(
        url,
        stream=stream,
        concurrency=concurrency,
        requests=requests,
        prompt_words=args.prompt_tokens,
        max_tokens=args.max_tokens,
        seed=args.seed,
    )


def measure(
    server: Server, args: argparse.Namespace, modes: tuple[bool, ...] = (True, False)
) -> list[dict[str, Any]]:
    run_benchmark(workload(server.url, False, 1, 2, args))  # warm-up
    rows = []
    for stream in modes:
        for c in args.concurrency:
            n = max(args.min_requests, args.rounds * c)
            load = os.getloadavg()[0]
            result = run_benchmark(workload(server.url, stream, c, n, args))
            s = summarize(result.records, result.duration_s)
            rows.append(
                {
                    "server": server.name,
                    "stream": stream,
                    "concurrency": c,
                    "load_1min_at_start": round(load, 2),
                    "requests": s.requests,
                    "completed": s.completed,
                    "errors": s.errors,
                    "duration_s": round(s.duration_s, 3),
                    "output_tokens_per_s": round(s.output_throughput, 2),
                    "delivered_tokens_per_s": round(s.delivered_output_tokens / s.duration_s, 2)
                    if s.duration_s
                    else 0.0,
                    "output_tokens": s.output_tokens,
                    "tokens_source": s.tokens_source,
                    "e2e_ms": {"p50": s.e2e.p50, "p95": s.e2e.p95},
                    "ttft_ms": {"p50": s.ttft.p50, "p95": s.ttft.p95},
                    "tpot_ms": {"p50": s.tpot.p50, "p95": s.tpot.p95},
                }
            )
            print(
                f"{server.name:>42} stream={stream!s:5} c={c:2}: {s.output_throughput:6.1f} tok/s, "
                f"{s.completed}/{s.requests} ok, e2e p50 {s.e2e.p50 or 0:7.0f} ms {s.errors or ''}",
                flush=True,
            )
    return rows


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def servers_of(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["server"] for r in rows))


def markdown(doc: dict[str, Any]) -> str:
    rows = doc["rows"]
    by = {(r["server"], r["stream"], r["concurrency"]): r for r in rows}
    names = servers_of(rows)
    out = [
        f"# llmos vs llama-cpp-python's server (SmolLM2-135M-Instruct Q4_1, {doc['max_tokens']} output tokens)",
        "",
        f"Command: `{doc['command']}`  ",
        f"Machine: {doc['machine']}; llama-cpp-python {doc['llama_cpp_python']}; {doc['started_at']}  ",
        f"Load average (1 min) at start {doc['load_start']:.2f}, at end {doc['load_end']:.2f}. {doc['note']}",
        "",
        f"All servers: llama.cpp threads {doc['threads']}, chat endpoint, greedy, ~{doc['prompt_tokens']}-word seeded prompts, "
        f"exactly {doc['max_tokens']} output tokens (`ignore_eos` for llmos, `min_tokens` for llama-cpp-python),",
        "closed loop (each client sends its next request when the previous one ends), run one after the other.",
        "tokens/s = output tokens of *completed* requests / wall time; a stream cut short is a failed request",
        '(its tokens appear only under "delivered" in the JSON). Latencies: end-to-end, completed requests.',
        f"`{LLAMACPP}` runs with its defaults (`interrupt_requests` on: a new request ends the running stream)"
        + (
            f"; `{LLAMACPP_QUEUED}` is the same server with streams queued instead (streaming only)."
            if LLAMACPP_QUEUED in names
            else "."
        ),
        "",
        "## Output tokens/s (completed / sent requests)",
        "",
        "| mode | concurrency | " + " | ".join(names) + f" | {LLMOS} / {LLAMACPP} |",
        "| --- | ---: | " + " | ".join("---:" for _ in names) + " | ---: |",
    ]
    for stream in (True, False):
        for c in doc["concurrency"]:
            cells = []
            for n in names:
                r = by.get((n, stream, c))
                cells.append(
                    "-" if r is None else f"{r['output_tokens_per_s']:.1f} ({r['completed']}/{r['requests']})"
                )
            a, b = by.get((LLMOS, stream, c)), by.get((LLAMACPP, stream, c))
            ratio = "-"
            if a and b and b["output_tokens_per_s"]:
                ratio = f"{a['output_tokens_per_s'] / b['output_tokens_per_s']:.2f}x"
            mode = "stream" if stream else "no stream"
            out.append(f"| {mode} | {c} | " + " | ".join(cells) + f" | {ratio} |")
    out += [
        "",
        "## End-to-end latency p50 / p95 (ms), and TTFT p50 (ms) when streaming",
        "",
        "| mode | concurrency | " + " | ".join(names) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    for stream in (True, False):
        for c in doc["concurrency"]:
            cells = []
            for n in names:
                r = by.get((n, stream, c))
                if r is None:
                    cells.append("-")
                    continue
                cell = f"{_fmt(r['e2e_ms']['p50'])} / {_fmt(r['e2e_ms']['p95'])}"
                if stream:
                    cell += f" (TTFT {_fmt(r['ttft_ms']['p50'])})"
                cells.append(cell)
            out.append(f"| {'stream' if stream else 'no stream'} | {c} | " + " | ".join(cells) + " |")
    out += ["", "![plot](peer_llamacpp_server.png)", ""]
    return "\n".join(out)


def plot(doc: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    rows = doc["rows"]
    cs = doc["concurrency"]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.5))
    series = [
        (n, st)
        for st in (True, False)
        for n in servers_of(rows)
        if any(r["server"] == n and r["stream"] == st for r in rows)
    ]
    width = 0.8 / len(series)
    colours = {n: f"C{i}" for i, n in enumerate(servers_of(rows))}
    for k, (server, stream) in enumerate(series):
        pick = {r["concurrency"]: r for r in rows if r["server"] == server and r["stream"] == stream}
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(cs))]
        label = f"{server} ({'stream' if stream else 'no stream'})"
        tps = [pick[c]["output_tokens_per_s"] if c in pick else 0 for c in cs]
        style = {"color": colours[server], "hatch": "" if stream else "//", "edgecolor": "white"}
        axes[0].bar(xs, tps, width, label=label, **style)
        for x, c, y in zip(xs, cs, tps, strict=True):
            if c in pick:
                note = f"{pick[c]['completed']}/{pick[c]['requests']}"
                axes[0].annotate(note, (x, y), ha="center", va="bottom", fontsize=6)
        for ax, q in ((axes[1], "p50"), (axes[2], "p95")):
            lat = [(pick[c]["e2e_ms"][q] or 0) / 1000 if c in pick else 0 for c in cs]
            ax.bar(xs, lat, width, label=label, **style)
    axes[0].set(title="output tokens/s of completed requests (labels: ok/sent)", ylabel="tokens/s")
    axes[1].set(title="end-to-end latency p50", ylabel="s")
    axes[2].set(title="end-to-end latency p95", ylabel="s")
    for ax in axes:
        ax.set_xticks(range(len(cs)), [f"concurrency {c}" for c in cs])
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7)
    title = f"SmolLM2-135M Q4_1, {doc['max_tokens']} output tokens, {doc['threads']} threads"
    full = f"{title} — {doc['note']}" if doc["note"] else title
    fig.suptitle(textwrap.fill(full, 170), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="GGUF path (default: fetched like the tests)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY))
    ap.add_argument("--rounds", type=int, default=2, help="requests per run = rounds x concurrency ...")
    ap.add_argument("--min-requests", type=int, default=8, help="... but at least this many")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=THREADS, help="llama.cpp threads, both servers")
    ap.add_argument("--note", default="", help="a line saying under which conditions this ran")
    ap.add_argument("--skip-queued", action="store_true", help="skip llama-cpp-python with interrupts off")
    args = ap.parse_args()
    model = args.model or fetch_model(DEFAULT_MODEL)
    load_start = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="llmos-peer-") as tmp:
        work = Path(tmp)
        with llmos_server(model, work, args.threads) as server:
            rows += measure(server, args)
        with llamacpp_server(model, work, args.threads) as server:
            rows += measure(server, args)
        if not args.skip_queued:
            with llamacpp_server(model, work, args.threads, interrupt=False) as server:
                rows += measure(server, args, modes=(True,))
    doc = {
        "command": shlex.join(["python", "bench/peer_llamacpp_server.py", *sys.argv[1:]]),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}",
        "llama_cpp_python": version("llama-cpp-python"),
        "started_at": started,
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "note": args.note,
        "concurrency": args.concurrency,
        "max_tokens": args.max_tokens,
        "prompt_tokens": args.prompt_tokens,
        "threads": args.threads,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "peer_llamacpp_server.json").write_text(json.dumps(doc, indent=2) + "\n")
    (args.out / "peer_llamacpp_server.md").write_text(markdown(doc))
    plot(doc, args.out / "peer_llamacpp_server.png")
    print(f"written to {args.out}/peer_llamacpp_server.{{json,md,png}}")


if __name__ == "__main__":
    main()
