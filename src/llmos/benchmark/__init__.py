"""``llmos bench``: a load generator for any OpenAI-compatible server (llmos's or a peer's).

A client tool: it speaks HTTP only and imports nothing of llmos's server, engine or storage.

* :mod:`~llmos.benchmark.workload` — what to send: the target, request shapes, arrivals, prompts.
* :mod:`~llmos.benchmark.sse_decoder` — an incremental ``text/event-stream`` decoder.
* :mod:`~llmos.benchmark.loadgen` — sends the load (closed loop or Poisson) and times every request.
* :mod:`~llmos.benchmark.stats` — percentiles, throughput, goodput against SLOs.
* :mod:`~llmos.benchmark.report` — the JSON document and the terminal table.
* :mod:`~llmos.benchmark.plot` — a PNG of the run (needs matplotlib).
"""

from __future__ import annotations

from llmos.benchmark.loadgen import BenchResult, LoadGenerator, RequestRecord, run_benchmark
from llmos.benchmark.stats import SLO, Distribution, Summary, percentile, summarize
from llmos.benchmark.workload import Workload, synthesize_prompt

__all__ = [
    "SLO",
    "BenchResult",
    "Distribution",
    "LoadGenerator",
    "RequestRecord",
    "Summary",
    "Workload",
    "percentile",
    "run_benchmark",
    "summarize",
    "synthesize_prompt",
]
