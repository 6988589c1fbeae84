"""Which weight type decodes SmolLM2-135M fastest on this CPU, alone and in a batch?

The test model ships as Q4_1, a type llama.cpp's CPU backend multiplies one row and one sequence
at a time; llmos's default (``LLMOS_CPU_WEIGHTS=auto``) maps it as its Q8_0 re-encoding, which
has batched kernels but reads 1.7× the bytes per token. This probe re-encodes the file with
llama.cpp's own quantizer into other types that have batched (repacked) kernels — Q4_0, IQ4_NL,
Q4_K_M — and runs the llmos engine on each: 1 sequence and 16 sequences, 64 greedy tokens each
after a distinct short chat prompt, throughput over a second round (the first warms up).

Speed only: a re-encoding from a 4-bit file to another 4-bit type compounds two quantization
errors; ``bench/cpu_weights_fidelity.py`` is where a candidate's next-token distributions must
be compared before it could become a default.

    .venv/bin/python bench/cpu_weight_types.py [--threads 2]

Prints a Markdown table and writes ``bench/results/cpu_weight_types.json``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import tempfile
import time
from pathlib import Path

import llama_cpp

from llmos.engine.base import LoadSpec, SamplingParams, SequenceSpec
from llmos.engine.llamacpp.engine import LlamaCppEngine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_servers import fetch_model

RESULTS = Path(__file__).resolve().parent / "results"
TYPES = {"q4_0": 2, "iq4_nl": 25, "q4_k_m": 15}  # llama_ftype values


def requantize(source: Path, dest: Path, ftype: int, threads: int) -> None:
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True
    params.nthread = threads
    if llama_cpp.llama_model_quantize(str(source).encode(), str(dest).encode(), ctypes.byref(params)) != 0:
        raise SystemExit(f"llama_model_quantize failed for {dest.name}")


def tokens_per_s(path: Path, n_seqs: int, weights: str, threads: int, derived: Path) -> tuple[float, int]:
    """Output tokens/s of ``n_seqs`` sequences decoded together, and the size of the file mapped."""
    engine = LlamaCppEngine()
    spec = LoadSpec(
        model_path=path,
        n_ctx=8192,
        n_slots=16,
        n_batch=512,
        n_threads=threads,
        cpu_weights=weights,
        derived_dir=derived,
    )
    size = Path(engine.load(spec).weights_path).stat().st_size
    params = SamplingParams(max_tokens=64, ignore_eos=True, temperature=0.0)
    tokens, started = 0, 0.0
    try:
        for rnd in range(2):
            for i in range(n_seqs):
                text = f"<|im_start|>user\nWrite story {i} of round {rnd} about the sea.<|im_end|>\n<|im_start|>assistant\n"
                engine.admit(SequenceSpec(f"r{rnd}-{i}", tuple(engine.tokenize(text)), params))
            if rnd == 1:
                started = time.perf_counter()
            while engine.sequences():
                outputs = engine.step().outputs
                if rnd == 1:
                    tokens += sum(len(o.token_ids) for o in outputs)
    finally:
        engine.unload()
    return tokens / (time.perf_counter() - started), size


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    source = fetch_model()
    with tempfile.TemporaryDirectory(prefix="llmos-weight-types-") as tmp:
        work = Path(tmp)
        variants: list[tuple[str, Path, str]] = [("q4_1 (the file; native)", source, "native")]
        variants.append(("q8_0 (auto's re-encoding)", source, "auto"))
        for name, ftype in TYPES.items():
            dest = work / f"{name}.gguf"
            requantize(source, dest, ftype, args.threads)
            variants.append((name, dest, "native"))
        rows = []
        for label, path, weights in variants:
            one, size = tokens_per_s(path, 1, weights, args.threads, work)
            many, _ = tokens_per_s(path, 16, weights, args.threads, work)
            rows.append(
                {
                    "weights": label,
                    "file_mib": round(size / 2**20),
                    "tok_s_1": round(one, 1),
                    "tok_s_16": round(many, 1),
                }
            )
    print("| weights | file (MiB) | tok/s, 1 sequence | tok/s, 16 sequences |")
    print("| --- | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['weights']} | {r['file_mib']} | {r['tok_s_1']} | {r['tok_s_16']} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cpu_weight_types.json").write_text(
        json.dumps({"threads": args.threads, "rows": rows}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
