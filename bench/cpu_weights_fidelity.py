"""How much the CPU re-encoding of a Q4_1 model (``cpu_weights="auto"``: Q8_0) changes the model.

Teacher-forced next-token distributions over the project's own docs (fixed text), compared with
the Q4_1 file as stored: mean KL(Q4_1 ‖ X), top-1 agreement and perplexity; plus greedy
continuations of chat prompts (tokens until the first difference). Two yardsticks in the same
run: the noise floor (the very Q4_1 file read in micro-batches of 32 instead of 512, which
llama.cpp computes with other kernels) and a real change of model (a Q4_0 requantization of
the same weights, 4 bits without a per-block offset). And IQ4_NL, a candidate for a faster
re-encoding (``bench/cpu_weight_types.py``).

    python bench/cpu_weights_fidelity.py [--model PATH] [--out bench/results] [--tokens N]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import llama_cpp as L
import numpy as np

from llmos.engine.llamacpp.requantize import choose_weights, convert

DEFAULT_MODEL = Path.home() / ".cache" / "llmos-tests" / "SmolLM2-135M-Instruct.Q4_1.gguf"
ROOT = Path(__file__).resolve().parent.parent
PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain what a GPU is in one sentence.",
    "List three fruits.",
    "Who wrote Hamlet?",
    "Give me a tip for learning to cook.",
    "What is 12 times 12?",
    "Describe a cat to someone who has never seen one.",
]
GREEDY_TOKENS = 64
FTYPE_Q4_0 = 2
FTYPE_IQ4_NL = 25  # llama_ftype LLAMA_FTYPE_MOSTLY_IQ4_NL


class Model:
    def __init__(self, path: Path, n_ubatch: int = 512) -> None:
        self.path = path
        self.model = L.llama_model_load_from_file(str(path).encode(), L.llama_model_default_params())
        cp = L.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = 2048, 512, n_ubatch, 1
        cp.n_threads = cp.n_threads_batch = 2
        cp.no_perf = True
        self.ctx = L.llama_init_from_model(self.model, cp)
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.batch = L.llama_batch_init(512, 0, 1)

    def close(self) -> None:
        L.llama_batch_free(self.batch)
        L.llama_free(self.ctx)
        L.llama_model_free(self.model)

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        raw = text.encode()
        buf = (L.llama_token * (len(raw) + 16))()
        n = L.llama_tokenize(self.vocab, raw, len(raw), buf, len(buf), False, special)
        return list(buf[:n])

    def _decode(self, tokens: list[int], start: int, all_logits: bool) -> None:
        b = self.batch
        b.n_tokens = len(tokens)
        for i, t in enumerate(tokens):
            b.token[i], b.pos[i], b.n_seq_id[i], b.seq_id[i][0] = t, start + i, 1, 0
            b.logits[i] = all_logits or i == len(tokens) - 1
        if L.llama_decode(self.ctx, b) != 0:
            raise RuntimeError("llama_decode failed")

    def logits(self, tokens: list[int]) -> np.ndarray[Any, Any]:
        """Teacher-forced logits of every position (one sequence, chunks of 512)."""
        L.llama_memory_clear(L.llama_get_memory(self.ctx), True)
        rows = []
        for start in range(0, len(tokens), 512):
            chunk = tokens[start : start + 512]
            self._decode(chunk, start, True)
            ptr = L.llama_get_logits(self.ctx)
            rows.append(np.ctypeslib.as_array(ptr, shape=(len(chunk), self.n_vocab)).copy())
        return np.concatenate(rows)

    def greedy(self, prompt: list[int], n: int) -> list[int]:
        L.llama_memory_clear(L.llama_get_memory(self.ctx), True)
        self._decode(prompt, 0, False)
        out: list[int] = []
        pos = len(prompt)
        for _ in range(n):
            ptr = ctypes.cast(L.llama_get_logits_ith(self.ctx, -1), ctypes.POINTER(ctypes.c_float))
            tok = int(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).argmax())
            out.append(tok)
            self._decode([tok], pos, False)
            pos += 1
        return out


def log_softmax(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def compare(ref: np.ndarray[Any, Any], other: np.ndarray[Any, Any], tokens: list[int]) -> dict[str, float]:
    lr, lo = log_softmax(ref), log_softmax(other)
    targets = np.array(tokens[1:])
    idx = np.arange(len(targets))
    return {
        "kl": float(np.mean(np.sum(np.exp(lr) * (lr - lo), axis=1))),
        "top1": float(np.mean(ref.argmax(axis=1) == other.argmax(axis=1))),
        "ppl": float(np.exp(-np.mean(lo[idx, targets]))),
    }


def first_difference(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), len(a))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--tokens", type=int, default=1024)
    args = ap.parse_args()
    L.llama_backend_init()
    text = "\n\n".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))
    with tempfile.TemporaryDirectory() as tmp:
        q8 = choose_weights(args.model, "auto", derived_dir=Path(tmp)).path
        q4_0 = Path(tmp) / "q4_0.gguf"
        convert(args.model, q4_0, FTYPE_Q4_0)
        iq4_nl = Path(tmp) / "iq4_nl.gguf"
        convert(args.model, iq4_nl, FTYPE_IQ4_NL)
        variants = {
            "q4_1, micro-batches of 32 (noise floor)": (args.model, 32),
            "q8_0 re-encoding (what llmos maps)": (q8, 512),
            "q4_0 requantization (a real change)": (q4_0, 512),
            "iq4_nl requantization (non-linear 4 bits; faster than q8_0, bench/cpu_weight_types.py)": (
                iq4_nl,
                512,
            ),
        }
        base = Model(args.model)
        tokens = base.tokenize(text)[: args.tokens]
        ref = base.logits(tokens)
        ref_ppl = float(np.exp(-np.mean(log_softmax(ref)[np.arange(len(tokens) - 1), tokens[1:]])))
        chats = [
            base.tokenize(f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n", special=True)
            for p in PROMPTS
        ]
        ref_greedy = [base.greedy(c, GREEDY_TOKENS) for c in chats]
        base.close()
        rows = []
        for name, (path, ubatch) in variants.items():
            m = Model(path, ubatch)
            row: dict[str, Any] = {"variant": name, "file_mib": round(path.stat().st_size / 2**20, 1)}
            row.update(compare(ref[:-1], m.logits(tokens)[:-1], tokens))
            same = [
                first_difference(r, m.greedy(c, GREEDY_TOKENS))
                for r, c in zip(ref_greedy, chats, strict=True)
            ]
            row["greedy_same_prefix"] = same
            row["greedy_identical"] = sum(s == GREEDY_TOKENS for s in same)
            m.close()
            rows.append(row)
            print(json.dumps(row), flush=True)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *sys.argv[1:]])
    meta = {
        "command": command,
        "model": args.model.name,
        "tokens": len(tokens),
        "q4_1_ppl": ref_ppl,
        "llama_cpp_python": L.__version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cpu_weights_fidelity.json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n"
    )
    lines = [
        "# CPU re-encoding of a Q4_1 model: how much the model changes",
        "",
        f"Command: `{command}`  ",
        f"Model: {meta['model']} (perplexity {ref_ppl:.2f} on {len(tokens)} tokens of docs/*.md), "
        f"llama-cpp-python {meta['llama_cpp_python']}, {meta['time']}  ",
        f"Reference: the Q4_1 file as stored, micro-batches of 512. Greedy: {len(PROMPTS)} chat prompts, "
        f"{GREEDY_TOKENS} tokens each.",
        "",
        "| variant | file MiB | KL(q4_1 ‖ variant) | top-1 agreement | perplexity | greedy runs identical | tokens before the first difference |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['file_mib']} | {r['kl']:.5f} | {r['top1']:.1%} | {r['ppl']:.2f} | "
            f"{r['greedy_identical']}/{len(PROMPTS)} | {', '.join(map(str, r['greedy_same_prefix']))} |"
        )
    (args.out / "cpu_weights_fidelity.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
