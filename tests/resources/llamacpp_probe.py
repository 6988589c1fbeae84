"""Load a GGUF in llmos's llama.cpp engine, decode a little, report the process RSS.

Run as a script in its own process: ``python llamacpp_probe.py MODEL N_CTX N_SLOTS N_BATCH DERIVED
[--stay]``. Prints one JSON line: rss_bytes (after loading and decoding), rss_start_bytes (before
loading), pid. With ``--stay`` it then keeps the model loaded until its stdin closes (a stand-in
worker). The engine loads as the server does (``cpu_weights="auto"``: a Q4_1 file maps its Q8_0
re-encoding, made under DERIVED, and the file itself for the solo lane); every slot prefills a
prompt and decodes a few tokens together, then one sequence decodes alone (in the lane, when the
load has one), so every buffer the engine uses has been touched.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import psutil

from llmos.engine.base import LoadSpec, SamplingParams, SequenceSpec
from llmos.engine.llamacpp import LlamaCppEngine

PROMPT_TOKENS = 64
DECODE_STEPS = 8
ALONE_STEPS = 24


def main() -> None:
    path, n_ctx, n_slots, n_batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    proc = psutil.Process()
    start = proc.memory_info().rss
    engine = LlamaCppEngine()
    engine.load(
        LoadSpec(
            model_path=Path(path),
            n_ctx=n_ctx,
            n_slots=n_slots,
            n_batch=n_batch,
            n_threads=max(1, psutil.cpu_count(logical=False) or 1),
            derived_dir=Path(sys.argv[5]),
        )
    )
    together = SamplingParams(temperature=0.0, max_tokens=DECODE_STEPS, ignore_eos=True)
    for s in range(n_slots):
        prompt = tuple(100 + (p * 7 + s) % 1000 for p in range(PROMPT_TOKENS))
        engine.admit(SequenceSpec(f"s{s}", prompt, together))
    while engine.sequences():
        engine.step()
    alone = SamplingParams(temperature=0.0, max_tokens=ALONE_STEPS, ignore_eos=True)
    engine.admit(SequenceSpec("alone", tuple(range(300, 300 + PROMPT_TOKENS)), alone))
    while engine.sequences():
        engine.step()
    print(
        json.dumps({"rss_bytes": proc.memory_info().rss, "rss_start_bytes": start, "pid": proc.pid}),
        flush=True,
    )
    if "--stay" in sys.argv:
        sys.stdin.read()
    engine.unload()


if __name__ == "__main__":
    main()
