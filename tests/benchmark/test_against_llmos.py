"""``llmos bench`` against a real llmos server (uvicorn on a loopback port) over the fake engine,
whose sequences would end after 3 tokens unless ``ignore_eos`` reaches the engine."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kernel.fakes import fake_kernel  # tests/ is on sys.path (rootdir-based imports)
from llmos.benchmark import Workload, run_benchmark, summarize
from llmos.cli.app import app
from llmos.server import Lifecycle, create_app

pytestmark = pytest.mark.integration

MODEL = "fake:1"
EOS_AFTER = 3
PROMPT_WORDS = 16
"""The fake engine's tokens are bytes: ~100 of them, within its 512 cells per slot."""


@pytest.fixture
def url(tmp_path: Path, serve_app: Callable[..., str]) -> Iterator[str]:
    kernel = fake_kernel(tmp_path, models=[MODEL], step_cost_s=0.001, eos_after=EOS_AFTER)
    life = Lifecycle()
    url = serve_app(create_app(kernel, lifecycle=life), life)
    yield url


@pytest.mark.parametrize(
    ("endpoint", "stream"), [("chat", True), ("chat", False), ("completions", True), ("completions", False)]
)
def test_every_request_completes_with_exact_lengths(url: str, endpoint: Any, stream: bool) -> None:
    w = Workload(
        url=url,
        model=MODEL,
        endpoint=endpoint,
        stream=stream,
        concurrency=4,
        requests=12,
        max_tokens=16,
        prompt_tokens=PROMPT_WORDS,
    )
    result = run_benchmark(w)
    s = summarize(result.records, result.duration_s)
    assert (s.requests, s.completed, s.errors) == (12, 12, {})
    assert sorted(r.index for r in result.records) == list(range(12))
    for r in result.records:
        assert r.output_tokens == 16 and r.tokens_source == "usage" and r.finish_reason == "length"
        assert r.prompt_tokens and r.prompt_tokens > PROMPT_WORDS
        if stream:
            assert r.token_times_s and r.ttft_s is not None and r.ttft_s <= (r.e2e_s or 0)
    assert s.output_tokens == 12 * 16 and s.output_throughput > 0


def test_without_ignore_eos_the_model_stops_early(url: str) -> None:
    w = Workload(
        url=url, model=MODEL, ignore_eos=False, requests=3, max_tokens=16, prompt_tokens=PROMPT_WORDS
    )
    result = run_benchmark(w)
    assert all(r.ok and r.output_tokens == EOS_AFTER and r.finish_reason == "stop" for r in result.records)


def test_an_unknown_model_is_counted_as_http_404(url: str) -> None:
    result = run_benchmark(Workload(url=url, model="ghost:1", requests=2, prompt_tokens=PROMPT_WORDS))
    assert [r.error for r in result.records] == ["http_404", "http_404"]
    assert "ghost" in (result.records[0].detail or "")


def test_the_cli_writes_json_and_a_plot(url: str, tmp_path: Path) -> None:
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    args = ["bench", "--url", url, "--model", MODEL, "-n", "8", "--concurrency", "2", "--max-tokens", "8"]
    args += ["--prompt-tokens", "16", "--slo-ttft-ms", "60000", "--json", str(out), "--plot", str(png)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "output token throughput" in result.output and "goodput" in result.output
    doc = json.loads(out.read_text())
    assert doc["schema"] == "llmos.bench/1" and doc["workload"]["concurrency"] == 2
    assert doc["summary"]["completed"] == 8 and doc["summary"]["goodput_fraction"] == 1.0
    assert len(doc["requests"]) == 8 and all(r["output_tokens"] == 8 for r in doc["requests"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_cli_fails_when_nothing_succeeds(url: str) -> None:
    result = CliRunner().invoke(app, ["bench", "--url", url, "--model", "ghost:1", "-n", "2"])
    assert result.exit_code == 1
    assert "http_404: 2" in result.output


def test_the_benchmark_is_a_client_tool() -> None:
    """Importing it pulls in nothing of the server, engine, kernel or storage."""
    code = "import sys, llmos.benchmark, llmos.benchmark.plot; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    forbidden = ("llmos.server", "llmos.engine", "llmos.kernel", "llmos.storage", "llmos.scheduler")
    assert not [m for m in loaded.split() if m.startswith(forbidden)]
