"""A PNG of one benchmark run: latency distributions, token throughput over time, and each
request's latency by its start time (failures in red). Needs matplotlib, imported only here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmos.benchmark.loadgen import BenchResult
from llmos.benchmark.stats import Summary
from llmos.errors import InvalidRequest

MATPLOTLIB_HINT = "--plot needs matplotlib: pip install matplotlib (it is in llmos's [dev] extra)"


def pyplot() -> Any:
    """matplotlib's pyplot on the non-interactive Agg backend; InvalidRequest if not installed."""
    try:
        import matplotlib
    except ImportError:
        raise InvalidRequest(MATPLOTLIB_HINT, param="plot") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _cdf(ax: Any, values_ms: list[float], label: str) -> None:
    if values_ms:
        xs = sorted(values_ms)
        ax.step(xs, [(i + 1) / len(xs) for i in range(len(xs))], where="post", label=label)


def plot_run(path: Path, result: BenchResult, summary: Summary) -> None:
    """Write the PNG to ``path``."""
    plt = pyplot()
    ok = [r for r in result.records if r.ok]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    w = result.workload
    arrivals = f"concurrency {w.concurrency}" if w.rate is None else f"Poisson {w.rate:g} req/s"
    fig.suptitle(
        f"{w.model} — {arrivals}, {'stream' if w.stream else 'no stream'}: "
        f"{summary.output_throughput:.1f} output tok/s, {summary.completed}/{summary.requests} ok"
    )

    ax = axes[0][0]
    _cdf(ax, [r.ttft_s * 1000 for r in ok if r.ttft_s is not None], "TTFT")
    _cdf(ax, [r.e2e_s * 1000 for r in ok if r.e2e_s is not None], "end-to-end")
    ax.set(title="latency CDF", xlabel="ms", ylabel="fraction of requests")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)

    ax = axes[0][1]
    itl = [g * 1000 for r in ok for g in r.itl_s]
    if itl:
        ax.hist(itl, bins=50)
    ax.set(title="inter-token latency", xlabel="ms", ylabel="gaps")
    ax.grid(alpha=0.3)

    ax = axes[1][0]
    _throughput(ax, result)

    ax = axes[1][1]
    for good, colour in ((True, "tab:blue"), (False, "tab:red")):
        pts = [(r.start_s, (r.e2e_s or 0.0) * 1000) for r in result.records if r.ok is good]
        if pts:
            ax.scatter(*zip(*pts, strict=True), s=8, c=colour, label="ok" if good else "failed")
    ax.set(title="end-to-end latency by start time", xlabel="start (s)", ylabel="ms")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _throughput(ax: Any, result: BenchResult) -> None:
    """Output tokens/s in one-second bins (streams by chunk arrival, whole answers at their end)."""
    bins: dict[int, float] = {}
    for r in result.records:
        if r.token_times_s:
            per_chunk = r.output_tokens / len(r.token_times_s) if r.ok else 1.0
            for t in r.token_times_s:
                bins[int(t)] = bins.get(int(t), 0.0) + per_chunk
        elif r.ok and r.e2e_s is not None:
            end = int(r.start_s + r.e2e_s)
            bins[end] = bins.get(end, 0.0) + r.output_tokens
    if bins:
        xs = list(range(max(bins) + 1))
        ax.bar(xs, [bins.get(x, 0.0) for x in xs], width=1.0, align="edge")
    ax.set(title="output tokens/s over time", xlabel="time (s)", ylabel="tokens/s")
    ax.grid(alpha=0.3)
