"""Load a GGUF with llama.cpp the way the engine does, decode a little, report the process RSS.

Run as a script in its own process: ``python llamacpp_probe.py MODEL N_CTX N_SLOTS N_BATCH [--stay]``.
Prints one JSON line: rss_bytes (after loading and decoding), rss_start_bytes (before loading),
pid. With ``--stay`` it then keeps the model loaded until its stdin closes (a stand-in worker).
Every slot prefills a prompt (chunked to n_batch) and then decodes a few tokens together, one
logit row per sequence per step, like the engine's continuous batching.
"""

from __future__ import annotations

import json
import sys

import llama_cpp as L
import psutil

PROMPT_TOKENS = 64
DECODE_STEPS = 8


def main() -> None:
    path, n_ctx, n_slots, n_batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    proc = psutil.Process()
    start = proc.memory_info().rss
    L.llama_backend_init()
    model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
    if not model:
        raise SystemExit(f"cannot load {path}")
    cp = L.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = n_ctx, n_batch, n_batch, n_slots
    cp.n_threads = cp.n_threads_batch = max(1, psutil.cpu_count(logical=False) or 1)
    ctx = L.llama_init_from_model(model, cp)
    if not ctx:
        raise SystemExit("cannot create a context")
    batch = L.llama_batch_init(n_batch, 0, n_slots)

    def decode(items: list[tuple[int, int, int, bool]]) -> None:
        batch.n_tokens = 0
        for token, pos, seq, logits in items:
            i = batch.n_tokens
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, pos, 1, logits
            batch.seq_id[i][0] = seq
            batch.n_tokens += 1
        if L.llama_decode(ctx, batch) != 0:
            raise SystemExit("llama_decode failed")

    prefill = [
        (100 + (p * 7 + s) % 1000, p, s, p == PROMPT_TOKENS - 1)
        for s in range(n_slots)
        for p in range(PROMPT_TOKENS)
    ]
    for i in range(0, len(prefill), n_batch):
        decode(prefill[i : i + n_batch])
    for step in range(DECODE_STEPS):
        decode([(200 + step, PROMPT_TOKENS + step, s, True) for s in range(n_slots)])
        for s in range(n_slots):
            L.llama_get_logits_ith(ctx, s)[0]
    print(
        json.dumps({"rss_bytes": proc.memory_info().rss, "rss_start_bytes": start, "pid": proc.pid}),
        flush=True,
    )
    if "--stay" in sys.argv:
        sys.stdin.read()
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    L.llama_model_free(model)


if __name__ == "__main__":
    main()
