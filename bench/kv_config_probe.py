"""Probe llama.cpp context settings with a bare batch loop (no llmos machinery).

Runs N distinct chat prompts through one context: one packed prefill decode, then ``--tokens``
greedy decode steps over all N sequences at once. Prints one JSON line with wall time and
process CPU time, split into prefill and decode, so that configurations can be compared by CPU
work (robust to load from other processes when ``--threads 1``) as well as by wall time.

    python bench/kv_config_probe.py --seqs 16 --tokens 128 --unified 0 --flash on
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import time
from pathlib import Path

import llama_cpp
import numpy as np

DEFAULT_MODEL = Path.home() / ".cache" / "llmos-tests" / "SmolLM2-135M-Instruct.Q4_1.gguf"
TOPICS = ["the sea", "a cat", "autumn", "the moon", "a city", "bread", "a river", "winter"]
FLASH = {"auto": -1, "off": 0, "on": 1}
KV_TYPES = {"f16": 1, "q8_0": 8, "f32": 0}


def chat_tokens(model: object, vocab: object, i: int) -> list[int]:
    msg = f"Write a short story number {i} about {TOPICS[i % len(TOPICS)]}."
    text = (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        f"<|im_start|>user\n{msg}<|im_end|>\n<|im_start|>assistant\n"
    ).encode()
    buf = (llama_cpp.llama_token * (len(text) + 8))()
    n = llama_cpp.llama_tokenize(vocab, text, len(text), buf, len(buf), True, True)
    return list(buf[:n])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--seqs", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--threads-batch", type=int, default=0, help="0: same as --threads")
    ap.add_argument("--n-ctx", type=int, default=8192)
    ap.add_argument("--n-seq-max", type=int, default=0, help="0: --seqs")
    ap.add_argument("--n-batch", type=int, default=512)
    ap.add_argument("--n-ubatch", type=int, default=512)
    ap.add_argument("--unified", type=int, default=1)
    ap.add_argument("--flash", choices=sorted(FLASH), default="auto")
    ap.add_argument("--type-k", choices=sorted(KV_TYPES), default="f16")
    ap.add_argument("--type-v", choices=sorted(KV_TYPES), default="f16")
    ap.add_argument("--swa-full", type=int, default=-1, help="-1: library default")
    ap.add_argument("--op-offload", type=int, default=-1, help="-1: library default")
    ap.add_argument("--perf", type=int, default=0, help="1: keep llama.cpp perf counters (no_perf=false)")
    ap.add_argument("--all-logits", type=int, default=0, help="1: request logits for every prefill row")
    args = ap.parse_args()

    llama_cpp.llama_backend_init()
    m = llama_cpp.llama_model_load_from_file(str(args.model).encode(), llama_cpp.llama_model_default_params())
    vocab = llama_cpp.llama_model_get_vocab(m)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    c = llama_cpp.llama_context_default_params()
    c.n_ctx, c.n_batch, c.n_ubatch = args.n_ctx, args.n_batch, args.n_ubatch
    c.n_seq_max = args.n_seq_max or args.seqs
    c.n_threads = args.threads
    c.n_threads_batch = args.threads_batch or args.threads
    c.kv_unified = bool(args.unified)
    c.flash_attn_type = FLASH[args.flash]
    c.type_k, c.type_v = KV_TYPES[args.type_k], KV_TYPES[args.type_v]
    if args.swa_full >= 0:
        c.swa_full = bool(args.swa_full)
    if args.op_offload >= 0:
        c.op_offload = bool(args.op_offload)
    c.no_perf = not args.perf
    ctx = llama_cpp.llama_init_from_model(m, c)
    if not ctx:
        raise SystemExit("context creation failed")
    n_ctx_seq = int(llama_cpp.llama_n_ctx_seq(ctx)) if hasattr(llama_cpp, "llama_n_ctx_seq") else -1
    prompts = [chat_tokens(m, vocab, i) for i in range(args.seqs)]
    b = llama_cpp.llama_batch_init(args.n_batch, 0, 1)

    def argmax(i: int) -> int:
        ptr = ctypes.cast(llama_cpp.llama_get_logits_ith(ctx, i), ctypes.POINTER(ctypes.c_float))
        return int(np.ctypeslib.as_array(ptr, shape=(n_vocab,)).argmax())

    w0, c0 = time.perf_counter(), time.process_time()
    rows = [(t, j, s, j == len(p) - 1) for s, p in enumerate(prompts) for j, t in enumerate(p)]
    last = [0] * args.seqs
    for start in range(0, len(rows), args.n_batch):
        b.n_tokens = 0
        outs = []
        for t, j, s, want in rows[start : start + args.n_batch]:
            k = b.n_tokens
            b.token[k], b.pos[k], b.n_seq_id[k], b.seq_id[k][0] = t, j, 1, s
            b.logits[k] = 1 if (want or args.all_logits) else 0
            if want:
                outs.append((s, k))
            b.n_tokens += 1
        rc = llama_cpp.llama_decode(ctx, b)
        if rc != 0:
            raise SystemExit(f"prefill decode failed: {rc}")
        for s, k in outs:
            last[s] = argmax(k)
    w1, c1 = time.perf_counter(), time.process_time()
    pos = [len(p) for p in prompts]
    for _ in range(args.tokens - 1):
        for s, t in enumerate(last):
            b.token[s], b.pos[s], b.n_seq_id[s], b.seq_id[s][0], b.logits[s] = t, pos[s], 1, s, 1
            pos[s] += 1
        b.n_tokens = len(last)
        rc = llama_cpp.llama_decode(ctx, b)
        if rc != 0:
            raise SystemExit(f"decode failed: {rc}")
        last = [argmax(s) for s in range(len(last))]
    w2, c2 = time.perf_counter(), time.process_time()
    n_prompt = len(rows)
    n_out = args.seqs * args.tokens
    result = {
        "seqs": args.seqs,
        "tokens": args.tokens,
        "threads": args.threads,
        "unified": args.unified,
        "flash": args.flash,
        "n_ctx": args.n_ctx,
        "n_ctx_seq": n_ctx_seq,
        "n_ubatch": args.n_ubatch,
        "type_k": args.type_k,
        "prompt_tokens": n_prompt,
        "prefill_wall_s": round(w1 - w0, 3),
        "prefill_cpu_s": round(c1 - c0, 3),
        "decode_wall_s": round(w2 - w1, 3),
        "decode_cpu_s": round(c2 - c1, 3),
        "out_tok_s": round(n_out / (w2 - w0), 1),
        "decode_tok_s": round(args.seqs * (args.tokens - 1) / (w2 - w1), 1),
        "decode_cpu_ms_per_step": round(1000 * (c2 - c1) / max(1, args.tokens - 1), 2),
        "load1": round(os.getloadavg()[0], 2),
        "last_tokens": last[:4],
    }
    print(json.dumps(result), flush=True)
    llama_cpp.llama_batch_free(b)
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(m)


if __name__ == "__main__":
    main()
