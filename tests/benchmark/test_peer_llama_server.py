"""The parts of ``bench/peer_llama_server.py`` that need no build and no server: arguments, the
cell figures, medians, ratios and goals, merging runs, the report, and the build's cache key."""

from __future__ import annotations

import importlib
import re
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from llmos.benchmark import RequestRecord

ROOT = Path(__file__).resolve().parents[2]


def _bench_module(monkeypatch: pytest.MonkeyPatch, name: str) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    return importlib.import_module(name)


@pytest.fixture
def peer(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return _bench_module(monkeypatch, "peer_llama_server")


@pytest.fixture
def report(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return _bench_module(monkeypatch, "peer_report")


@pytest.fixture
def build(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return _bench_module(monkeypatch, "llama_server_build")


# -- arguments -------------------------------------------------------------------------------


def test_defaults_are_the_issues_run(peer: ModuleType) -> None:
    args = peer.parse_args([])
    assert args.concurrency == [1, 4, 16, 32]
    assert (args.rounds, args.threads, args.max_tokens, args.label) == (2, 2, 128, "run")
    # 6, 8, 32 and 64 requests per cell, as in the issue's table.
    counts = [peer.requests_for(c, args.per_client, args.min_requests) for c in args.concurrency]
    assert counts == [6, 8, 32, 64]
    assert peer.requests_for(4, per_client=5, min_requests=6) == 20


@pytest.mark.parametrize(
    "argv",
    [
        ["--rounds", "0"],
        ["--concurrency", "4", "0"],
        ["--per-client", "0"],
        ["--warmup", "-1"],
        ["--label", "../x"],
    ],
)
def test_bad_arguments_are_refused(
    peer: ModuleType, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        peer.parse_args(argv)
    assert exc.value.code == 2
    assert "must" in capsys.readouterr().err


def test_llmos_src_must_hold_the_package(
    peer: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        peer.parse_args(["--llmos-src", str(tmp_path)])
    assert "no llmos package" in capsys.readouterr().err
    assert peer.parse_args(["--llmos-src", str(ROOT / "src")]).llmos_src == ROOT / "src"


def test_rounds_rotate_the_server_order(peer: ModuleType) -> None:
    names = [[c.key for c in peer.round_order(peer.CONTENDERS, r)] for r in range(4)]
    assert names[0] == ["llama-server", "llmos", "llmos-native"]
    assert names[1] == ["llmos", "llmos-native", "llama-server"]
    assert names[2] == ["llmos-native", "llama-server", "llmos"]
    assert names[3] == names[0]
    weights = {c.key: c.env.get("LLMOS_CPU_WEIGHTS") for c in peer.CONTENDERS}
    assert weights == {"llama-server": None, "llmos": "auto", "llmos-native": "native"}


def test_rounds_alternate_the_concurrency_order(peer: ModuleType) -> None:
    orders = [peer.concurrency_order([16, 1, 32, 4], r) for r in range(3)]
    assert orders == [[1, 4, 16, 32], [32, 16, 4, 1], [1, 4, 16, 32]]


def test_every_cell_reads_prompts_of_its_own(peer: ModuleType) -> None:
    seeds = {peer.cell_seed(0, r, c) for r in range(2) for c in (1, 4, 16, 32)}
    assert len(seeds) == 8 and peer.cell_seed(0, 1, 4) == peer.cell_seed(0, 1, 4)
    assert 10_000 not in seeds  # the warm-up's prompts stay apart too


# -- figures ---------------------------------------------------------------------------------


def test_cpu_delta_splits_the_server_from_its_children(report: ModuleType) -> None:
    before = report.CpuSample(root=1.0, children={10: 2.0, 11: 1.0})
    after = report.CpuSample(root=1.5, children={10: 3.0, 12: 0.5})  # 11 ended, 12 started
    assert report.cpu_delta(before, after) == pytest.approx((0.5, 1.5))


def _record(index: int, *, ok: bool, tokens: int, chunks: int, ttft: float) -> RequestRecord:
    rec = RequestRecord(index=index, start_s=0.0, ok=ok, ttft_s=ttft if ok else None, e2e_s=1.5)
    rec.token_times_s = [ttft + 0.01 * i for i in range(chunks)]
    rec.output_tokens = tokens
    if not ok:
        rec.error = "incomplete_stream"
    return rec


def test_a_cell_counts_short_streams_and_cpu_per_streamed_token(report: ModuleType) -> None:
    records = [
        _record(0, ok=True, tokens=128, chunks=128, ttft=0.1),
        _record(1, ok=True, tokens=100, chunks=100, ttft=0.3),  # finished, but short of 128
        _record(2, ok=False, tokens=3, chunks=3, ttft=0.2),  # broke after 3 tokens
    ]
    cell = report.cell_stats(
        records, 2.0, max_tokens=128, server_cpu_s=0.462, engine_cpu_s=None, client_cpu_s=0.231
    )
    assert cell["cut_short"] == 2 and cell["completed"] == 2 and cell["requests"] == 3
    assert cell["errors"] == {"incomplete_stream": 1}
    assert cell["streamed_tokens"] == 231
    assert cell["tok_s"] == pytest.approx(115.5)
    assert cell["completed_tok_s"] == pytest.approx(114.0)
    assert cell["ttft_ms"]["p50"] == pytest.approx(200.0)  # completed streams only: 100 and 300 ms
    assert cell["cpu_s_per_1k_tokens"]["server"] == pytest.approx(2.0)
    assert cell["cpu_s_per_1k_tokens"]["client"] == pytest.approx(1.0)
    assert cell["cpu_s_per_1k_tokens"]["engine"] is None


def _cell(
    server: str, c: int, tok_s: float, ttft_ms: float, *, cut: int = 0, server_cpu: float = 1.0
) -> dict[str, Any]:
    return {
        "server": server,
        "concurrency": c,
        "requests": 2 * c,
        "cut_short": cut,
        "tok_s": tok_s,
        "ttft_ms": {"p50": ttft_ms, "p90": 2 * ttft_ms},
        "cpu_s_per_1k_tokens": {
            "server": server_cpu,
            "engine": None if server == "llama-server" else 3.0,
            "client": 0.5,
        },
    }


def _cells() -> list[dict[str, Any]]:
    return [
        _cell("llama-server", 16, 90.0, 3000.0, cut=1),
        _cell("llama-server", 16, 88.0, 3200.0),
        _cell("llama-server", 16, 80.0, 9000.0),
        _cell("llama-server", 32, 100.0, 20000.0),
        _cell("llmos", 16, 100.0, 600.0, server_cpu=2.0),
        _cell("llmos", 16, 95.0, 500.0, server_cpu=4.0),
        _cell("llmos", 16, 70.0, 700.0, server_cpu=3.0),
        _cell("llmos", 32, 99.0, 30000.0),
    ]


def test_medians_over_rounds_and_ratios_to_the_peer(report: ModuleType) -> None:
    med = report.medians(_cells())
    assert med["llama-server"]["16"]["tok_s"] == 88.0 and med["llmos"]["16"]["tok_s"] == 95.0
    assert med["llama-server"]["16"]["cut_short"] == 1 and med["llama-server"]["16"]["requests"] == 96
    assert med["llmos"]["16"]["ttft_p50_ms"] == 600.0 and med["llmos"]["16"]["ttft_p90_ms"] == 1200.0
    assert med["llmos"]["16"]["cpu_s_per_1k_tokens"] == {"server": 3.0, "engine": 3.0, "client": 0.5}
    assert med["llama-server"]["16"]["cpu_s_per_1k_tokens"]["engine"] is None
    rat = report.ratios(med)
    assert set(rat) == {"llmos"}
    assert rat["llmos"]["16"]["tok_s"] == pytest.approx(95.0 / 88.0)
    assert rat["llmos"]["16"]["ttft_p50"] == pytest.approx(600.0 / 3200.0)
    assert rat["llmos"]["32"]["tok_s"] == pytest.approx(0.99)


def test_goals_hold_only_where_every_concurrency_meets_them(report: ModuleType) -> None:
    med = report.medians(_cells())
    g = report.goals(med, report.ratios(med))["llmos"]
    # 32 streams: 0.99x llama-server's tok/s and a slower first token; 99 tok/s at 32 >= 95 at 16.
    assert g == {"tok_s": False, "ttft": False, "queueing": True, "cut_short": True}
    faster = [_cell("llama-server", 16, 50.0, 900.0), _cell("llmos", 16, 60.0, 800.0, cut=2)]
    med = report.medians(faster)
    g = report.goals(med, report.ratios(med))["llmos"]
    assert g == {"tok_s": True, "ttft": True, "queueing": None, "cut_short": False}


def test_a_later_run_is_stored_beside_the_baseline(report: ModuleType) -> None:
    doc = report.merge_run(None, "before", {"x": 1})
    doc = report.merge_run(doc, "after", {"x": 2})
    assert doc["runs"] == {"before": {"x": 1}, "after": {"x": 2}}
    doc = report.merge_run(doc, "after", {"x": 3})
    assert doc["runs"] == {"before": {"x": 1}, "after": {"x": 3}}
    assert doc["schema"] == "llmos.peer-llama-server/1"


def _run_doc(report: ModuleType, tok: float) -> dict[str, Any]:
    cells = [_cell("llama-server", 16, 88.0, 3000.0), _cell("llmos", 16, tok, 600.0)]
    med = report.medians(cells)
    rat = report.ratios(med)
    return {
        "command": "python bench/peer_llama_server.py",
        "started_at": "2026-12-02T00:00:00Z",
        "machine": "test machine",
        "versions": "v",
        "uptime_before": "load average: 1.00",
        "uptime_after": "load average: 2.00",
        "settings": {
            "model": "m.gguf",
            "threads": 2,
            "concurrency": [16],
            "rounds": 1,
            "warmup": 2,
            "requests": {"16": 32},
            "max_tokens": 128,
            "prompt_words": 64,
        },
        "servers": [
            {"key": "llama-server", "command": "llama-server"},
            {"key": "llmos", "command": "llmos serve"},
        ],
        "medians": med,
        "ratios": rat,
        "goals": report.goals(med, rat),
        "plot": "p.png",
    }


def test_the_report_shows_each_run_and_compares_them(report: ModuleType) -> None:
    doc = report.merge_run(None, "before", _run_doc(report, 44.0))
    doc = report.merge_run(doc, "after", _run_doc(report, 132.0))
    text = report.markdown(doc)
    assert "## Runs compared" in text
    assert "## Run `before`" in text and "## Run `after`" in text
    assert "| 16 | 88.0 | 44.0 (0.50×) |" in text
    assert "| 16 | 88.0 | 132.0 (1.50×) |" in text
    assert "| 16 | llmos | 44.0 | 0.50× | 1.00 | 3.00 | 132.0 | 1.50× | 1.00 | 3.00 |" in text
    assert "| aggregate tok/s ≥ 1.0× llama-server's at every concurrency | **not** |" in text
    assert "| aggregate tok/s ≥ 1.0× llama-server's at every concurrency | holds |" in text


# -- the build -------------------------------------------------------------------------------


def test_the_build_leaves_amx_out_as_scripts_setup_does(build: ModuleType) -> None:
    setup = (ROOT / "scripts" / "setup").read_text()
    no_amx = re.search(r'^no_amx="([^"]*)"', setup, re.M)
    version = re.search(r'^llama_version="([^"]*)"', setup, re.M)
    assert no_amx is not None and version is not None
    assert no_amx.group(1) == build.NO_AMX
    assert version.group(1) == build.LLAMA_CPP_PYTHON
    options = build.cmake_options("-DGGML_CUDA=on -DCMAKE_C_FLAGS='-O3 -g'")
    assert f"-DCMAKE_C_FLAGS={build.NO_AMX}" in options and f"-DCMAKE_CXX_FLAGS={build.NO_AMX}" in options
    assert "-DCMAKE_BUILD_TYPE=Release" in options and "-DGGML_NATIVE=ON" in options
    assert "-DLLAMA_USE_PREBUILT_UI=OFF" in options  # nothing fetched at build time
    assert options[-2:] == ["-DGGML_CUDA=on", "-DCMAKE_C_FLAGS=-O3 -g"]  # extra options last: they win


def test_the_cache_key_follows_everything_that_changes_the_binary(build: ModuleType) -> None:
    base = build.build_key("0.3.36", ["-DA=1"], "x86_64", "flags : avx2")
    assert re.fullmatch(r"[0-9a-f]{16}", base)
    assert base == build.build_key("0.3.36", ["-DA=1"], "x86_64", "flags : avx2")
    others = {
        build.build_key("0.3.37", ["-DA=1"], "x86_64", "flags : avx2"),
        build.build_key("0.3.36", ["-DA=2"], "x86_64", "flags : avx2"),
        build.build_key("0.3.36", ["-DA=1"], "aarch64", "flags : avx2"),
        build.build_key("0.3.36", ["-DA=1"], "x86_64", "flags : avx2 amx_tile"),
    }
    assert base not in others and len(others) == 4
    cpuinfo = "processor : 0\nflags\t\t: fpu avx2\nprocessor : 1\nflags\t\t: fpu avx2\n"
    assert build.cpu_flags(cpuinfo) == "flags\t\t: fpu avx2" and build.cpu_flags("") == ""
    assert build.cache_root({"XDG_CACHE_HOME": "/c"}) == Path("/c/llmos-bench")
    assert build.binary_dir(Path("/c"), "0.3.36", base) == Path(f"/c/llama-server-0.3.36-{base}")


def test_a_cached_binary_is_used_without_building(
    build: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLMOS_LLAMA_CMAKE_ARGS", raising=False)
    key = build.build_key(
        build.LLAMA_CPP_PYTHON,
        build.cmake_options(),
        build.platform.machine(),
        build.cpu_flags(build._read_cpuinfo()),
    )
    binary = build.binary_dir(tmp_path, build.LLAMA_CPP_PYTHON, key) / "llama-server"
    binary.parent.mkdir()
    binary.write_text("")

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("nothing may be downloaded or compiled when the binary is cached")

    monkeypatch.setattr(subprocess, "run", no_build)
    assert build.ensure_llama_server(root=tmp_path) == binary
    monkeypatch.setenv("LLMOS_LLAMA_CMAKE_ARGS", "-DGGML_CUDA=on")  # another key: would build
    with pytest.raises(AssertionError, match="nothing may be downloaded"):
        build.ensure_llama_server(root=tmp_path)
