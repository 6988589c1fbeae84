"""Data retrieval at scale: ingest throughput and search latency on SQLite (sqlite-vec) and
PostgreSQL (pgvector HNSW), and recall@10 of vector search against exact brute force.

Synthetic data: 384-dimensional vectors (MiniLM's size) drawn around 256 cluster centres and
L2-normalized, so neighbourhoods are realistic for an ANN index; each chunk also gets ~60 words
of synthetic text, so the full-text index is built and queried too. Embedding is *not* timed
(vectors are given): ingest = storing documents of 100 chunks each through the repository
(rows, full-text triggers, vector index), one transaction per document.

Queries: 200 stored vectors perturbed by noise of norm ~0.3, plus words from their text. Latency is measured
for vector search alone and for the service's hybrid search (vector + keyword, fused by RRF).
recall@10 = |index top-10 ∩ exact top-10| / 10, averaged over queries.

    python bench/data_retrieval.py [--sizes 10000 100000] [--backends sqlite postgres] [--out bench/results]

PostgreSQL comes from pgserver (PyPI; PostgreSQL 16 with pgvector) in a temp directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from llmos.data.datasets import DatasetService
from llmos.data.service import DataService
from llmos.data.tokens import ApproxTokenizer
from llmos.domain.data import NewChunk, NewDocument
from llmos.storage.blobs import BlobStore
from llmos.storage.data_datasets import DatasetStore
from llmos.storage.data_vectors import exact_top_k
from llmos.storage.db import Database, make_engine
from llmos.storage.documents import DocumentStore
from llmos.storage.migrate import upgrade

DIM = 384
CHUNKS_PER_DOC = 100
QUERIES = 200
K = 10
WORDS = [f"w{i}" for i in range(5000)]


def synthetic(n: int, seed: int = 7) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(256, DIM)).astype(np.float32)
    labels = rng.integers(0, len(centres), size=n)
    vectors = centres[labels] + 0.6 * rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    words = rng.integers(0, len(WORDS), size=(n, 60))
    texts = [" ".join(WORDS[j] for j in row) for row in words]
    return vectors.astype(np.float32), texts


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[Database]:
    if backend == "sqlite":
        db = Database(make_engine(f"sqlite:///{workdir / 'bench.db'}"))
        upgrade(db.engine)
        yield db
        db.dispose()
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server: Any = pgserver.get_server(workdir / "pgdata", cleanup_mode="stop")
    url = server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
    db = Database(make_engine(url))
    upgrade(db.engine)
    try:
        yield db
    finally:
        db.dispose()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def run_one(backend: str, n: int, workdir: Path) -> dict[str, Any]:
    vectors, texts = synthetic(n)
    with database(backend, workdir) as db:
        store = DocumentStore(db)
        lookup: dict[str, list[float]] = {}

        async def embed(model: str, batch: list[str], tenant: str) -> list[list[float]]:
            return [lookup[t] for t in batch]

        tok = ApproxTokenizer()
        service = DataService(
            store, DatasetService(DatasetStore(db), BlobStore(workdir / "b", workdir / "t"), tok), embed, tok
        )
        asyncio.run(service.create_collection("bench", "c", embedding_model="synthetic"))
        start = time.perf_counter()
        for d in range(0, n, CHUNKS_PER_DOC):
            chunks = tuple(
                NewChunk(
                    position=i - d,
                    text=texts[i],
                    token_count=60,
                    start=0,
                    end=len(texts[i]),
                    embedding=tuple(vectors[i].tolist()),
                )
                for i in range(d, min(n, d + CHUNKS_PER_DOC))
            )
            store.add_document(
                "bench",
                "c",
                NewDocument(f"doc{d // CHUNKS_PER_DOC}", "txt", "0" * 64, 0, "synthetic", {}, chunks),
            )
        ingest_s = time.perf_counter() - start
        collection = store.get_collection("bench", "c")
        kind = store.index_kind()
        ids = np.arange(1, n + 1, dtype=np.int64)  # chunk ids follow insertion order from 1
        rng = np.random.default_rng(11)
        picks = rng.choice(n, size=QUERIES, replace=False)
        vec_ms: list[float] = []
        hybrid_ms: list[float] = []
        recalls: list[float] = []
        for qi in picks:
            q = vectors[qi] + (0.3 / np.sqrt(DIM)) * rng.normal(size=DIM).astype(np.float32)
            q /= np.linalg.norm(q)
            t0 = time.perf_counter()
            got = store.vector_search([collection], q, K)
            vec_ms.append((time.perf_counter() - t0) * 1000)
            truth = {i for i, _ in exact_top_k(ids, vectors, q, K)}
            recalls.append(len(truth & {i for i, _ in got}) / K)
            words = texts[qi].split()[:3]
            query = " ".join(words)
            lookup[query] = q.tolist()
            t0 = time.perf_counter()
            asyncio.run(service.search("bench", ["c"], query, top_k=K))
            hybrid_ms.append((time.perf_counter() - t0) * 1000)
    return {
        "backend": backend,
        "index": kind,
        "chunks": n,
        "dim": DIM,
        "ingest_s": round(ingest_s, 2),
        "ingest_chunks_per_s": round(n / ingest_s, 1),
        "vector_p50_ms": round(percentile(vec_ms, 50), 2),
        "vector_p95_ms": round(percentile(vec_ms, 95), 2),
        "hybrid_p50_ms": round(percentile(hybrid_ms, 50), 2),
        "hybrid_p95_ms": round(percentile(hybrid_ms, 95), 2),
        "recall_at_10": round(statistics.fmean(recalls), 4),
    }


NOTES = """
## Reading the numbers

- **sqlite-vec scans exactly** (no ANN index in sqlite-vec 0.1): recall is 1.0 by construction and
  latency grows linearly with the chunks of the searched collection (100k × 384 floats ≈ 150 MB per
  query). It suits the embedded default up to ~100k chunks per collection; beyond that, use
  PostgreSQL.
- **pgvector HNSW** (m=16, ef_construction=64, ef_search=max(100, 2k)): sub-linear search at the
  cost of ingest — each insert walks the graph, which dominates PostgreSQL's ingest time.
- **hybrid** = embedding the query (a lookup here) + vector search + full-text search + fusion + one
  query for the hits' text, each step a thread hop from the event loop.
- Embedding is not timed: a real upload adds the embedding model's time, which on a CPU is usually
  the larger part.
"""


def render(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = [
        "# Data retrieval benchmark",
        "",
        f"Command: `{meta['command']}` — {meta['when']}, {meta['machine']}, load average {meta['load_average']}.",
        "",
        *([meta["note"], ""] if meta.get("note") else []),
        f"Data: {meta['data']}; {CHUNKS_PER_DOC} chunks per document, one transaction per document; "
        f"{QUERIES} queries (perturbed stored vectors + 3 of their words). Embedding time is not included.",
        "",
        "| backend | index | chunks | ingest chunks/s | vector p50 ms | vector p95 ms | hybrid p50 ms | hybrid p95 ms | recall@10 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['index']} | {r['chunks']:,} | {r['ingest_chunks_per_s']:,} | {r['vector_p50_ms']} | "
            f"{r['vector_p95_ms']} | {r['hybrid_p50_ms']} | {r['hybrid_p95_ms']} | {r['recall_at_10']} |"
        )
    return "\n".join(lines) + "\n" + NOTES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--note", default="", help="A line about the run (e.g. the machine's load)")
    parser.add_argument("--render", action="store_true", help="Only rewrite the .md from the .json")
    args = parser.parse_args()
    if args.render:
        saved = json.loads((args.out / "data_retrieval.json").read_text())
        saved["meta"]["note"] = args.note or saved["meta"].get("note", "")
        (args.out / "data_retrieval.json").write_text(json.dumps(saved, indent=2) + "\n")
        (args.out / "data_retrieval.md").write_text(render(saved["meta"], saved["results"]))
        return
    rows = []
    for backend in args.backends:
        for n in args.sizes:
            workdir = Path(tempfile.mkdtemp(prefix="llmos-bench-data-"))
            try:
                row = run_one(backend, n, workdir)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            print(json.dumps(row), flush=True)
            rows.append(row)
    meta = {
        "command": "python " + shlex.join(sys.argv),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load_average": os.getloadavg(),
        "data": f"synthetic {DIM}-d vectors (256 clusters, normalized) + 60-word synthetic texts",
        "queries": QUERIES,
        "chunks_per_document": CHUNKS_PER_DOC,
        "note": args.note,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "data_retrieval.json").write_text(
        json.dumps({"meta": meta, "results": rows}, indent=2) + "\n"
    )
    (args.out / "data_retrieval.md").write_text(render(meta, rows))


if __name__ == "__main__":
    main()
