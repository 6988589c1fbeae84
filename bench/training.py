"""Fine-tuning on the CPU beside inference: time per epoch, training tokens/s, the trainer's peak
memory, and the base model's inference throughput with and without a job running.

One job (LoRA on ``smollm2:135m``'s GGUF, a synthetic chat dataset of ``--examples`` lines) runs
through :class:`llmos.training.manager.TrainingManager` in its own process with yielding off
(``--yield none``: the measured contention is the worst case) or on (``pause``). Inference is
measured with llama.cpp on the same file: ``--requests`` greedy chat completions of 32 tokens,
once before the job and once while it trains. The trainer's peak RSS is the largest
``ru_maxrss`` of this process's children.

    python bench/training.py --examples 32 --epochs 2 --threads 1

Results: ``bench/results/training.json`` and ``.md`` (with the command line that made them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from llmos.config import TrainingConfig, TrainingYield, load_config
from llmos.data.datasets import DatasetService
from llmos.data.tokens import ApproxTokenizer
from llmos.domain.training import Hyperparameters, JobSpec
from llmos.registry.registry import Registry
from llmos.storage.blobs import BlobStore
from llmos.storage.data_datasets import DatasetStore
from llmos.storage.db import open_database
from llmos.storage.manifests import ManifestRepository
from llmos.storage.training import TrainingStore
from llmos.training.manager import TrainingManager

RESULTS = Path(__file__).parent / "results"
MODEL = Path.home() / ".cache" / "llmos-tests" / "SmolLM2-135M-Instruct.Q4_1.gguf"


class Unlimited:
    def free(self, device: str = "cpu") -> int:
        return 1 << 40

    def reserve(self, owner: str, nbytes: int) -> bool:
        return True

    def unreserve(self, owner: str) -> None:
        return None


def dataset(n: int) -> bytes:
    lines = []
    for i in range(n):
        q = f"What is the code word number {i}?"
        a = f"The code word number {i} is {['alpha', 'beta', 'gamma', 'delta'][i % 4]}-{i * 7 % 101}."
        lines.append(
            json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
        )
    return "\n".join(lines).encode()


def inference_tps(requests: int, threads: int) -> float:
    from llama_cpp import Llama

    llm = Llama(model_path=str(MODEL), n_ctx=512, n_threads=threads, verbose=False, seed=0)
    tokens = 0
    t0 = time.perf_counter()
    for i in range(requests):
        out = llm.create_chat_completion(
            [{"role": "user", "content": f"Write a sentence about the number {i}."}],
            max_tokens=32,
            temperature=0,
        )
        tokens += int(out["usage"]["completion_tokens"])
    return tokens / (time.perf_counter() - t0)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="llmos-bench-training-"))
    os.environ["LLMOS_HOME"] = str(home)
    db = open_database(load_config())
    blobs = BlobStore(home / "blobs", home / "tmp")
    registry = Registry(ManifestRepository(db), blobs)
    registry.import_file(MODEL, "smollm2:135m")
    datasets = DatasetService(DatasetStore(db), blobs, ApproxTokenizer())
    train = await datasets.upload("bench", "train.jsonl", dataset(args.examples))
    policy: TrainingYield = args.yield_policy
    manager = TrainingManager(
        TrainingConfig(threads=args.threads, yield_policy=policy),
        store=TrainingStore(db),
        registry=registry,
        datasets=datasets,
        memory=Unlimited(),
        work_root=home / "training",
        cores=os.cpu_count() or 1,
    )
    alone = await asyncio.to_thread(inference_tps, args.requests, args.threads)
    await manager.start()
    hp = Hyperparameters(epochs=args.epochs, batch_size=args.batch_size, max_seq_len=64, validation_split=0.0)
    job = await manager.create(
        "bench", JobSpec(model="smollm2:135m", training_dataset=train.id, hyperparameters=hp)
    )
    started = time.perf_counter()
    for _ in range(36000):  # until the first optimizer step: the job is really training
        job = await manager.get("bench", job.id)
        if job.final or (job.progress is not None and job.progress.step > 0):
            break
        await asyncio.sleep(0.5)
    beside = await asyncio.to_thread(inference_tps, args.requests, args.threads)
    for _ in range(36000):
        job = await manager.get("bench", job.id)
        if job.final:
            break
        await asyncio.sleep(0.5)
    wall = time.perf_counter() - started
    await manager.shutdown()
    progress = job.progress
    return {
        "state": job.state,
        "error": job.error,
        "examples": args.examples,
        "epochs": args.epochs,
        "threads": args.threads,
        "yield_policy": policy,
        "job_wall_s": round(wall, 1),
        "time_per_epoch_s": round(wall / args.epochs, 1),
        "train_tokens_per_s": round(progress.tokens_per_second or 0.0, 1) if progress else None,
        "trained_tokens": job.trained_tokens,
        "trainer_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "inference_tokens_per_s_alone": round(alone, 1),
        "inference_tokens_per_s_beside_training": round(beside, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--yield", dest="yield_policy", default="none", choices=["none", "pause", "threads"])
    args = parser.parse_args()
    result = asyncio.run(run(args))
    result["command"] = "python bench/training.py " + " ".join(sys.argv[1:])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "training.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(f"| {k} | {v} |" for k, v in result.items())
    (RESULTS / "training.md").write_text(
        f"# Fine-tuning beside inference\n\n`{result['command']}`\n\n| metric | value |\n| --- | --- |\n{rows}\n"
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
