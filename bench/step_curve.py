"""Measure how one engine step's time depends on the batch: the curve the queue-model bench replays.

Loads SmolLM2-135M with :class:`LlamaCppEngine` (as ``bench/scheduler_policies.py`` does) and times

* decode steps with ``n`` sequences each decoding one token, for ``n`` = 1 … slots;
* prefill steps reading ``p`` prompt tokens of one new sequence beside ``n`` decoding ones;

in interleaved rounds, keeping each point's lower quartile (a busy machine only slows steps).

It then fits ``step_s = base + per_decode·n + per_prefill·p`` by least squares and writes
``bench/results/step_curve.json`` (the per-point lower quartiles and the fit). Usage (repository root)::

    nice -n 19 .venv/bin/python bench/step_curve.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from llmos.engine.base import LoadSpec, SamplingParams, SequenceSpec, StepPlan

DEFAULT_MODEL = Path.home() / ".cache" / "llmos-tests" / "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = Path(__file__).parent / "results" / "step_curve.json"


def fit(rows: list[tuple[int, int, float]]) -> tuple[float, float, float]:
    """Least squares of ``s = a + b·n + c·p`` over (n, p, s) rows."""
    import numpy as np

    x = np.array([[1.0, n, p] for n, p, _ in rows])
    y = np.array([s for _, _, s in rows])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return float(coef[0]), float(coef[1]), float(coef[2])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per point")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    from llmos.engine.llamacpp import LlamaCppEngine

    derived = tempfile.TemporaryDirectory(prefix="llmos-curve-")
    engine = LlamaCppEngine()
    engine.load(
        LoadSpec(
            model_path=args.model,
            n_ctx=8192,
            n_slots=args.slots + 1,
            n_batch=512,
            n_threads=args.threads,
            derived_dir=Path(derived.name),
        )
    )
    params = SamplingParams(temperature=0.0, max_tokens=100_000, ignore_eos=True)
    text = engine.render_chat([{"role": "user", "content": "Tell me a long story about the sea."}])
    prompt = tuple(engine.tokenize(text))
    if len(prompt) < 128:
        prompt = (prompt * (128 // len(prompt) + 1))[:128]
    counter = iter(range(1_000_000))

    def start() -> str:
        sid = f"s{next(counter)}"
        engine.admit(SequenceSpec(seq_id=sid, prompt=prompt, params=params))
        engine.step(StepPlan(tokens={sid: len(prompt)}))
        return sid

    def timed(plan: dict[str, int]) -> float:
        t0 = time.perf_counter()
        engine.step(StepPlan(tokens=plan))
        return time.perf_counter() - t0

    # Rounds interleave every point, and each point keeps its lower quartile: on a shared
    # machine the load changes during the run, and it can only make a step slower.
    timed({start(): 1})  # the first steps allocate buffers
    for sid in [s.seq_id for s in engine.sequences()]:
        engine.abort(sid)
    running = [start() for _ in range(args.slots)]
    prompts = (16, 32, 64, 128)
    samples: dict[tuple[int, int], list[float]] = {}
    for _ in range(args.steps):
        for n in range(1, args.slots + 1):
            samples.setdefault((n, 0), []).append(timed(dict.fromkeys(running[:n], 1)))
        for n in (0, 2, 4):
            for p in prompts:
                sid = f"p{next(counter)}"
                engine.admit(SequenceSpec(seq_id=sid, prompt=prompt[:p], params=params))
                samples.setdefault((n, min(p, len(prompt))), []).append(
                    timed({sid: min(p, len(prompt)), **dict.fromkeys(running[:n], 1)})
                )
                engine.abort(sid)
    point = {k: statistics.quantiles(v, n=4)[0] for k, v in samples.items()}
    rows = [(n, p, t) for (n, p), t in point.items()]
    decode = {n: point[(n, 0)] for n in range(1, args.slots + 1)}
    prefill = {f"{n}+{p}": t for (n, p), t in point.items() if p > 0}
    for n, t in decode.items():
        print(f"decode n={n}: {t * 1000:.2f} ms", file=sys.stderr)
    base, per_decode, per_prefill = fit(rows)
    engine.unload()
    derived.cleanup()
    result: dict[str, Any] = {
        "command": " ".join(["bench/step_curve.py", *(argv if argv is not None else sys.argv[1:])]),
        "model": str(args.model),
        "prompt_tokens": len(prompt),
        "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg_at_start": os.getloadavg(),
        "decode_s": decode,
        "prefill_s": prefill,
        "fit": {"base_s": base, "per_decode_s": per_decode, "per_prefill_token_s": per_prefill},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(
        f"fit: {base * 1000:.2f} ms + {per_decode * 1000:.3f} ms/decoding seq + "
        f"{per_prefill * 1000:.4f} ms/prompt token; wrote {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
