"""The registry commands through the SDK against a real server (uvicorn, fake engines) whose
registry is the real one on this test's LLMOS_HOME."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
import pytest
from typer.testing import CliRunner

from llmos.cli.app import app

runner = CliRunner()


def write_gguf(path: Path, *, seed: int = 0, template: str | None = None) -> Path:
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(256)
    w.add_embedding_length(8)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    if template is not None:
        w.add_chat_template(template)
    w.add_tensor("token_embd.weight", np.random.default_rng(seed).random((16, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def llmos(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def blob_listing(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "blobs").glob("*")) if (home / "blobs").exists() else []


def test_import_list_show_cp_rm(llmos_home: Path, served: Callable[[], str], tmp_path: Path) -> None:
    served()
    v1 = write_gguf(tmp_path / "v1.gguf", seed=1, template="{{ hi }}")
    code, out, _ = llmos("import", str(v1), "--name", "tiny:1", "-q")
    assert code == 0 and "imported tiny:1" in out

    code, out, _ = llmos("list")
    assert code == 0
    header, row = out.strip().splitlines()
    assert header.split() == ["NAME", "DIGEST", "SIZE", "QUANTIZATION", "MODIFIED"]
    assert row.split()[:2] == ["tiny:1", json.loads(llmos("show", "tiny:1", "--json")[1])["digest"][:12]]
    assert "F32" in row and "just now" in row

    code, out, _ = llmos("import", str(write_gguf(tmp_path / "v2.gguf", seed=2)), "--name", "tiny:1", "-q")
    assert code == 0 and "previous version" in out
    code, out, _ = llmos("show", "tiny:1")
    assert code == 0
    for expected in ("architecture", "llama", "quantization", "F32", "context length", "256", "versions"):
        assert expected in out
    assert out.count("tiny@sha256:") == 2  # both versions listed
    shown = json.loads(llmos("show", "tiny:1", "--json")[1])
    assert len(shown["versions"]) == 2 and shown["parent"] == shown["versions"][1]["digest"]

    assert llmos("cp", "tiny:1", "copy:x")[0] == 0
    assert {json.loads(llmos("list", "--json")[1])[i]["name"] for i in range(2)} == {"tiny:1", "copy:x"}
    code, out, _ = llmos("rm", "tiny:1")
    assert code == 0 and "deleted tiny:1" in out
    assert len(blob_listing(llmos_home)) == 1  # copy:x still references the current blob
    code, out, _ = llmos("rm", "copy:x")
    assert code == 0 and blob_listing(llmos_home) == []


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["show", "nope:1"], 3, "not found"),
        (["rm", "nope:1"], 3, "not found"),
        (["show", "../x"], 2, "invalid model name"),
        (["rm", "a:b:c"], 2, "too many ':'"),
        (["show", "x@sha256:123"], 2, "64 hex digits"),
        (["cp", "nope:1", "x:1"], 3, "not found"),
        (["pull", "nope:1"], 3, "not in the catalog"),
        (["import", "/definitely/missing.gguf", "--name", "a:1"], 3, "no such file"),
    ],
)
def test_errors_are_one_line_on_stderr_with_exit_code(
    served: Callable[[], str], args: list[str], code: int, message: str
) -> None:
    served()
    got, out, err = llmos(*args)
    assert got == code
    assert message in err and err.startswith("error:")
    assert out == ""
    assert "Traceback" not in err


def test_bad_files_leave_the_registry_as_before(
    llmos_home: Path, served: Callable[[], str], tmp_path: Path
) -> None:
    served()
    llmos("import", str(write_gguf(tmp_path / "ok.gguf")), "--name", "ok:1", "-q")
    before = (blob_listing(llmos_home), llmos("list", "--json")[1])
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model at all")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes((tmp_path / "ok.gguf").read_bytes()[:-10])
    for path, message in ((junk, "not a GGUF model file"), (cut, "truncated")):
        code, _, err = llmos("import", str(path), "--name", "ok:1", "-q")
        assert code == 2 and message in err
        assert (blob_listing(llmos_home), llmos("list", "--json")[1]) == before


def test_unreachable_hub(
    llmos_home: Path, served: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMOS_HF_ENDPOINT", "http://127.0.0.1:9")
    served()
    code, _, err = llmos("pull", "-q", "hf.co/org/repo:model.gguf")
    assert code == 6 and "cannot reach http://127.0.0.1:9" in err
    assert blob_listing(llmos_home) == []


def test_without_a_server_every_registry_command_says_how_to_start_one(llmos_home: Path) -> None:
    for args in (["list"], ["show", "x:1"], ["pull", "x:1"], ["rm", "x:1"], ["cp", "a:1", "b:1"]):
        code, out, err = llmos(*args)
        assert code == 6 and out == "", args
        assert err.startswith("error: no llmos server is running at") and "'llmos serve'" in err
        assert len(err.strip().splitlines()) == 1


def test_version_and_help() -> None:
    code, out, _ = llmos("--version")
    assert code == 0 and out.startswith("llmos ")
    code, out, _ = llmos("--help")
    for command in ("pull", "list", "show", "rm", "cp", "import"):
        assert command in out


def test_progress_bar_draws_reports() -> None:
    import io

    from rich.console import Console

    from llmos.cli.progress_bar import progress_bar
    from llmos.sdk import Progress

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100)
    with progress_bar(console) as bar:
        bar(Progress("extracting", 50_000_000, 100_000_000))
    assert "extracting" in buf.getvalue()
