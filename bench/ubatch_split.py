"""What scattered slots cost: llama.cpp's per-sequence KV streams decode in ubatches of
*consecutive* sequence ids only.

With ``kv_unified`` off (llmos's default layout: one KV stream per slot), ``llama_decode`` splits a
batch with ``split_equal(sequential=true)``: a ubatch takes a token of sequence ``s`` only after
one of ``s - 1``, in batch order. Every break in the run starts another ubatch, and every ubatch
is a forward pass of its own over all the weights. This probe decodes the same sequences one
token each, many steps, in different slot layouts, with the bare batch API (no llmos scheduling):

* ``N in order``: slots 0..N-1, the batch in slot order (one ubatch);
* ``N shuffled``: the same slots, the batch in a shuffled order (what admission order gives
  after a server has run a while);
* ``4 spread``: slots 0, 4, 8, 12 (four ubatches: holes left by finished sequences).

Before the engine kept its sequences packed and its batches sorted (``LlamaCppEngine._compact``),
a server drifted from the first layout to the others the longer it ran.

    .venv/bin/python bench/ubatch_split.py [--steps 40] [--threads 2]

Writes ``bench/results/ubatch_split.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import llama_cpp

from llmos.engine.base import LoadSpec
from llmos.engine.llamacpp.batch import Batch
from llmos.engine.llamacpp.model import LlamaModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_servers import fetch_model

RESULTS = Path(__file__).resolve().parent / "results"
SLOTS = 16


def layouts() -> list[tuple[str, list[int]]]:
    return [
        ("16 in order", list(range(16))),
        ("16 shuffled", random.Random(1).sample(range(16), 16)),
        ("4 in order (slots 0-3)", [0, 1, 2, 3]),
        ("4 reversed (slots 3-0)", [3, 2, 1, 0]),
        ("4 spread (slots 0, 4, 8, 12)", [0, 4, 8, 12]),
    ]


def measure(model: LlamaModel, batch: Batch, order: list[int], steps: int) -> dict[str, float]:
    """Prefill a short prompt in each slot of ``order``, then time ``steps`` decode steps that
    feed one token per sequence in that batch order."""
    mem = model.memory
    for s in range(SLOTS):
        llama_cpp.llama_memory_seq_rm(mem, s, -1, -1)
    prompt = model.tokenize("Write a story about the sea.", add_special=True, parse_special=True)
    for s in sorted(order):
        batch.clear()
        batch.add_run(prompt, 0, s, logits_last=True)
        if llama_cpp.llama_decode(model.ctx, batch.raw) != 0:
            raise SystemExit("prefill failed")
    n_past = len(prompt)
    walls, cpus = [], []
    for step in range(steps + 3):
        batch.clear()
        for s in order:
            batch.add_run([1000 + step], n_past + step, s, logits_last=True)
        w0, c0 = time.perf_counter(), time.process_time()
        if llama_cpp.llama_decode(model.ctx, batch.raw) != 0:
            raise SystemExit("decode failed")
        if step >= 3:  # the first steps build graphs
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
    walls.sort()
    cpus.sort()
    return {"step_ms_median": 1000 * walls[len(walls) // 2], "cpu_ms_median": 1000 * cpus[len(cpus) // 2]}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="every layout this many times, interleaved")
    args = ap.parse_args()
    spec = LoadSpec(model_path=fetch_model(), n_ctx=8192, n_slots=SLOTS, n_batch=512, n_threads=args.threads)
    model = LlamaModel(spec, n_seq_max=SLOTS)
    batch = Batch(512)
    rows: dict[str, list[dict[str, float]]] = {}
    try:
        for _ in range(args.rounds):
            for name, order in layouts():
                rows.setdefault(name, []).append(measure(model, batch, order, args.steps))
    finally:
        batch.close()
        model.close()
    table = []
    for name, runs in rows.items():
        wall = sorted(r["step_ms_median"] for r in runs)[len(runs) // 2]
        cpu = sorted(r["cpu_ms_median"] for r in runs)[len(runs) // 2]
        table.append({"layout": name, "step_ms": round(wall, 1), "cpu_ms": round(cpu, 1)})
    base = {16: table[0]["step_ms"], 4: table[2]["step_ms"]}
    print("| layout | decode step (ms, median) | CPU per step (ms) | vs in order |")
    print("| --- | ---: | ---: | ---: |")
    for row in table:
        ref = base[16 if row["layout"].startswith("16") else 4]
        print(f"| {row['layout']} | {row['step_ms']} | {row['cpu_ms']} | {row['step_ms'] / ref:.2f}x |")
    RESULTS.mkdir(exist_ok=True)
    out = {"threads": args.threads, "steps": args.steps, "rounds": args.rounds, "rows": table}
    (RESULTS / "ubatch_split.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
