"""Aggregate output tokens/s of the llama.cpp engine at 1, 4, 16, 32 concurrent sequences.

Compared, in one run, with (a) llama-cpp-python's high-level ``Llama`` serving the same requests
one after another from the model file and (b) a bare ``llama_decode`` batch loop (greedy argmax,
no machinery) over the weights llmos maps. With ``cpu_weights="auto"`` (the default) llmos maps
a Q4_1 file as its one-time Q8_0 re-encoding (``llmos.engine.cpu_weights``), so two more columns
keep the comparison honest: (a') ``Llama`` sequential on that re-encoding, and llmos with
``cpu_weights="native"`` (the Q4_1 file as it is).
Every request: a distinct short chat prompt (the model's default system prompt, then one user
line; no run repeats another run's prompts), 128 new tokens, greedy, EOS ignored. Every variant
starts cold each run: ``Llama`` and the llmos engines are loaded for the run (not timed), and
each reuses prefixes only within it — ``Llama`` the system prompt it still holds from the
previous request, llmos its shared prefill of prompts read together.
Throughput = all output tokens / wall time from first admission to last token (prefill included).
The engine and the bare loop run the same llama.cpp context settings (per-sequence KV streams,
``kv_unified=false``; flash attention auto; same threads); ``Llama`` keeps its defaults and the
same threads. Compare runs only at a 1-minute load average well below 1 (``load`` in the meta).

    python bench/engine_throughput.py [--model PATH] [--out bench/results] [--threads N]
        [--concurrency 1 4 16 32] [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np

from llmos.config import SchedulerConfig
from llmos.core import CoreClient, CoreSpec, ProcessHost
from llmos.engine.base import Engine, LoadSpec, SamplingParams, SequenceSpec
from llmos.engine.llamacpp import LlamaCppEngine
from llmos.engine.llamacpp.model import physical_cores
from llmos.scheduler import GenerationRequest, RequestClass

DEFAULT_MODEL = Path.home() / ".cache" / "llmos-tests" / "SmolLM2-135M-Instruct.Q4_1.gguf"
CONCURRENCY = (1, 4, 16, 32)
NEW_TOKENS = 128
N_CTX = 8192
CPU_S: dict[str, float] = {}
"""Process CPU seconds of the last run (this process only: not the engine core's)."""
TOPICS = ["the sea", "a cat", "autumn", "the moon", "a city", "bread", "a river", "winter"]


def prompts(engine: Engine, n: int, run: int = 0) -> list[tuple[int, ...]]:
    """``n`` distinct chat prompts (the model's default system prompt, then one user line);
    ``run`` makes them distinct from every other run's, so no variant finds a whole prompt
    cached from an earlier run."""
    out = []
    for i in range(n):
        msg = f"Write a short story number {run}.{i} about {TOPICS[i % len(TOPICS)]}."
        out.append(tuple(engine.tokenize(engine.render_chat([{"role": "user", "content": msg}]))))
    return out


def run_fresh(make: Callable[[], Engine], spec: LoadSpec, batch: list[tuple[int, ...]]) -> float:
    """Run on an engine loaded for this run only (loading is not timed): every variant starts
    cold and reuses prefixes only within the run, as (a) does."""
    engine = make()
    engine.load(spec)
    try:
        return run_engine(engine, batch)
    finally:
        engine.unload()


def run_core(spec: LoadSpec, batch: list[tuple[int, ...]]) -> float:
    """The server's path minus HTTP: an engine core in its own process (scheduler and engine in
    one loop), fed through its client; loading is not timed."""

    async def main() -> float:
        client = CoreClient(ProcessHost(), CoreSpec("llamacpp", spec, "bench", SchedulerConfig()))
        await client.start()
        try:
            params = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, ignore_eos=True)
            t0, c0 = time.perf_counter(), time.process_time()
            streams = [
                client.submit(
                    GenerationRequest(f"s{i}", SequenceSpec(f"s{i}", p, params), RequestClass(tenant="bench"))
                )
                for i, p in enumerate(batch)
            ]
            outs = await asyncio.gather(*(s.collect() for s in streams))
            elapsed = time.perf_counter() - t0
            CPU_S["last"] = time.process_time() - c0
        finally:
            await client.close()
        produced = sum(o[-1].completion_tokens for o in outs)
        assert produced == NEW_TOKENS * len(batch), produced
        return produced / elapsed

    return asyncio.run(main())


def run_engine(engine: Engine, batch: list[tuple[int, ...]]) -> float:
    params = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, ignore_eos=True)
    t0, c0 = time.perf_counter(), time.process_time()
    for i, p in enumerate(batch):
        engine.admit(SequenceSpec(f"s{i}", p, params))
    produced = 0
    while engine.sequences():
        produced += sum(len(o.token_ids) for o in engine.step().outputs)
    elapsed = time.perf_counter() - t0
    CPU_S["last"] = time.process_time() - c0
    assert produced == NEW_TOKENS * len(batch), produced
    return produced / elapsed


def run_high_level(model: Path, batch: list[tuple[int, ...]], threads: int) -> float:
    llm = llama_cpp.Llama(str(model), n_ctx=2048, n_threads=threads, n_batch=512, verbose=False)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        produced = 0
        for p in batch:
            # No reset: like a server on Llama, it reuses the longest prefix it still holds
            # from the previous request (here the system prompt).
            n = 0
            for _tok in llm.generate(list(p), temp=0.0, repeat_penalty=1.0, reset=True):
                n += 1
                if n >= NEW_TOKENS:
                    break
            produced += n
        CPU_S["last"] = time.process_time() - c0
        return produced / (time.perf_counter() - t0)
    finally:
        llm.close()


def run_bare(model: Path, batch: list[tuple[int, ...]], threads: int) -> float:
    """A bare continuous-batching loop: prefill all prompts in one decode, then one decode per
    step over every sequence, greedy argmax over each logits row."""
    mparams = llama_cpp.llama_model_default_params()
    m = llama_cpp.llama_model_load_from_file(str(model).encode(), mparams)
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx, cparams.n_batch, cparams.n_ubatch = N_CTX, 512, 512
    cparams.n_seq_max = max(len(batch), 1)
    cparams.n_threads = cparams.n_threads_batch = threads
    cparams.kv_unified = False  # the engine's default: each sequence attends over its own stream
    cparams.no_perf = True
    ctx = llama_cpp.llama_init_from_model(m, cparams)
    n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(m))
    b = llama_cpp.llama_batch_init(512, 0, 1)
    try:

        def argmax(i: int) -> int:
            ptr = ctypes.cast(llama_cpp.llama_get_logits_ith(ctx, i), ctypes.POINTER(ctypes.c_float))
            return int(np.ctypeslib.as_array(ptr, shape=(n_vocab,)).argmax())

        t0, c0 = time.perf_counter(), time.process_time()
        rows = [(t, j, s, j == len(p) - 1) for s, p in enumerate(batch) for j, t in enumerate(p)]
        last = [0] * len(batch)
        for start in range(0, len(rows), 512):  # prefill, packed into batches of 512
            b.n_tokens = 0
            outs = []
            for t, j, s, want in rows[start : start + 512]:
                k = b.n_tokens
                b.token[k], b.pos[k], b.n_seq_id[k], b.seq_id[k][0], b.logits[k] = t, j, 1, s, want
                if want:
                    outs.append((s, k))
                b.n_tokens += 1
            if llama_cpp.llama_decode(ctx, b) != 0:
                raise RuntimeError("decode failed")
            for s, k in outs:
                last[s] = argmax(k)
        pos = [len(p) for p in batch]
        produced = len(batch)
        for _ in range(NEW_TOKENS - 1):
            b.n_tokens = 0
            for s, t in enumerate(last):
                b.token[s], b.pos[s], b.n_seq_id[s], b.seq_id[s][0], b.logits[s] = t, pos[s], 1, s, 1
                pos[s] += 1
            b.n_tokens = len(last)
            if llama_cpp.llama_decode(ctx, b) != 0:
                raise RuntimeError("decode failed")
            last = [argmax(s) for s in range(len(last))]
            produced += len(last)
        CPU_S["last"] = time.process_time() - c0
        return produced / (time.perf_counter() - t0)
    finally:
        llama_cpp.llama_batch_free(b)
        llama_cpp.llama_free(ctx)
        llama_cpp.llama_model_free(m)


VARIANTS: list[tuple[str, str]] = [
    ("high_level_sequential", "(a) Llama sequential, model file"),
    ("high_level_same_weights", "(a') Llama sequential, llmos's weights"),
    ("bare_batch_loop", "(b) bare llama_decode loop, llmos's weights"),
    ("llmos_in_process", "llmos in-process"),
    ("llmos_core", "llmos engine core, own process"),
    ("llmos_native", "llmos in-process, cpu_weights=native"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--threads", type=int, default=physical_cores())
    ap.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY))
    ap.add_argument("--repeat", type=int, default=1, help="runs per variant; the best one counts")
    args = ap.parse_args()
    spec = LoadSpec(
        model_path=args.model, n_ctx=N_CTX, n_slots=max(args.concurrency), n_batch=512, n_threads=args.threads
    )
    load_start = os.getloadavg()[0]
    local = LlamaCppEngine()  # the tokenizer, and the weights llmos maps
    info = local.load(spec)
    weights = Path(info.weights_path)
    native_spec = replace(spec, cpu_weights="native")
    rows = []
    counter = 0
    try:
        for n in args.concurrency:
            row: dict[str, Any] = {"concurrency": n}
            cpu: dict[str, float] = {}
            samples: dict[str, list[float]] = {}
            runs = {
                "high_level_sequential": lambda b: run_high_level(args.model, b, args.threads),
                "high_level_same_weights": lambda b: run_high_level(weights, b, args.threads),
                "bare_batch_loop": lambda b: run_bare(weights, b, args.threads),
                "llmos_in_process": lambda b: run_fresh(LlamaCppEngine, spec, b),
                "llmos_core": lambda b: run_core(spec, b),
                "llmos_native": lambda b: run_fresh(LlamaCppEngine, native_spec, b),
            }
            for _ in range(args.repeat):  # interleaved, so that a burst of load hits every variant
                for key, run in runs.items():
                    counter += 1
                    samples.setdefault(key, []).append(run(prompts(local, n, counter)))
                    if key != "llmos_core":
                        cpu[key] = max(cpu.get(key, 0.0), NEW_TOKENS * n / CPU_S["last"])
            for key, values in samples.items():
                row[key] = max(values)  # the least disturbed run
            row["samples"] = samples
            # Output tokens per CPU-second of this process: with --threads 1 a load-robust
            # measure of work (wall time under other processes' load is not).
            row["tokens_per_cpu_s"] = cpu
            row["vs_high_level"] = row["llmos_in_process"] / row["high_level_sequential"]
            row["vs_high_level_same_weights"] = row["llmos_in_process"] / row["high_level_same_weights"]
            row["vs_bare"] = row["llmos_in_process"] / row["bare_batch_loop"]
            row["core_vs_high_level"] = row["llmos_core"] / row["high_level_sequential"]
            row["core_vs_bare"] = row["llmos_core"] / row["bare_batch_loop"]
            row["native_vs_high_level"] = row["llmos_native"] / row["high_level_sequential"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        local.unload()
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *sys.argv[1:]])
    meta = {
        "command": command,
        "model": args.model.name,
        "weights": info.weights,
        "new_tokens": NEW_TOKENS,
        "threads": args.threads,
        "machine": f"{platform.machine()} {physical_cores()} cpus",
        "llama_cpp_python": llama_cpp.__version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_1min_start": round(load_start, 2),
        "load_1min_end": round(os.getloadavg()[0], 2),
        "kv_unified": False,
        "repeat": args.repeat,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "engine_throughput.json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n"
    )
    write_report(args.out, meta, rows)
    plot(args.out, meta, rows)


def write_report(out: Path, meta: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    lines = [
        "# Engine throughput (aggregate output tokens/s, greedy, 128 new tokens per sequence)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Model: {meta['model']}; llmos maps its weights as {meta['weights']}; threads {meta['threads']}, "
        f"{meta['machine']}, llama-cpp-python {meta['llama_cpp_python']}, {meta['time']}  ",
        "KV: per-sequence streams (kv_unified=false) for llmos and (b); 1-minute load average "
        f"{meta['load_1min_start']} at start, {meta['load_1min_end']} at end; best of {meta['repeat']} "
        "interleaved run(s) per cell",
        "",
        "| sequences | " + " | ".join(label for _, label in VARIANTS) + " |",
        "| ---: | " + " | ".join("---:" for _ in VARIANTS) + " |",
    ]
    for r in rows:
        lines.append(f"| {r['concurrency']} | " + " | ".join(f"{r[k]:.0f}" for k, _ in VARIANTS) + " |")
    lines += [
        "",
        "| sequences | in-process / (a) | core / (a) | in-process / (a') | in-process / (b) | core / (b) | native / (a) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['concurrency']} | {r['vs_high_level']:.2f}x | {r['core_vs_high_level']:.2f}x | "
            f"{r['vs_high_level_same_weights']:.2f}x | {r['vs_bare']:.0%} | {r['core_vs_bare']:.0%} | "
            f"{r['native_vs_high_level']:.2f}x |"
        )
    lines += [
        "",
        "Output tokens per CPU-second of the benchmark process (work, not wall time; the engine core's "
        "CPU is in another process):",
        "",
        "| sequences | (a) | (a') | (b) | llmos in-process | native | in-process / (a) | in-process / (b) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        c = r["tokens_per_cpu_s"]
        a, a2, b = c["high_level_sequential"], c["high_level_same_weights"], c["bare_batch_loop"]
        e, nat = c["llmos_in_process"], c["llmos_native"]
        lines.append(
            f"| {r['concurrency']} | {a:.0f} | {a2:.0f} | {b:.0f} | {e:.0f} | {nat:.0f} | {e / a:.2f}x | {e / b:.0%} |"
        )
    (out / "engine_throughput.md").write_text("\n".join(lines) + "\n\n![plot](engine_throughput.png)\n")


def plot(out: Path, meta: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    xs = [r["concurrency"] for r in rows]
    for key, label in VARIANTS:
        ax.plot(xs, [r[key] for r in rows], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("concurrent sequences")
    ax.set_ylabel("aggregate output tokens/s")
    ax.set_title(f"{meta['model']} on {meta['machine']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "engine_throughput.png", dpi=120)


if __name__ == "__main__":
    main()
