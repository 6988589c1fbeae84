"""The SDK's ``client.data`` and the ``llmos docs`` / ``llmos datasets`` commands against a real
uvicorn server (fake engine, hashed-bag-of-words embedder, SQLite with sqlite-vec)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kernel.fakes import MemoryRegistry, inventory, manifest  # tests/ is on sys.path
from llmos.cli.app import app
from llmos.config import load_config
from llmos.engine.fake import FakeEngine
from llmos.kernel import build_kernel
from llmos.sdk import AsyncClient, Client
from llmos.sdk.errors import BadRequestError, NotFoundError
from llmos.server import Lifecycle, create_app
from llmos.storage.db import Database, make_engine
from llmos.storage.migrate import upgrade

from .conftest import make_service
from .fakes import HashEmbedder


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _served(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    serve_app: Callable[..., str],
    registry: MemoryRegistry,
    embedder: HashEmbedder,
) -> Iterator[str]:
    """A real uvicorn server over fake engines and ``embedder``; LLMOS_BASE_URL points at it."""
    db = Database(make_engine(f"sqlite:///{tmp_path / 'server.db'}"))
    upgrade(db.engine)
    kernel = build_kernel(
        load_config(home=tmp_path / "server-home", auth="off"),
        registry=registry,
        engine_factory=lambda backend: FakeEngine(),
        inventory=inventory(),
        database=db,
        data=make_service(db, embedder, tmp_path),
    )
    life = Lifecycle()
    url = serve_app(create_app(kernel, lifecycle=life), life)
    monkeypatch.setenv("LLMOS_BASE_URL", url)
    yield url
    db.dispose()


@pytest.fixture
def live_url(
    tmp_path: Path, llmos_home: Path, monkeypatch: pytest.MonkeyPatch, serve_app: Callable[..., str]
) -> Iterator[str]:
    registry = MemoryRegistry(tmp_path, [manifest("fake:1"), manifest("fake:embed")])
    yield from _served(tmp_path, monkeypatch, serve_app, registry, HashEmbedder())


def test_sdk_documents_search_versions_and_datasets(live_url: str, tmp_path: Path) -> None:
    note = tmp_path / "note.md"
    note.write_text("# Moon\n\nThe moon orbits the earth every 27 days.")
    with Client(live_url) as client:
        col = client.data.create_collection("space", chunk_tokens=64)
        assert (col.name, col.embedding_model, col.dimensions) == ("space", "fake:embed", None)
        doc = client.data.add_document("space", note, metadata={"kind": "fact"})
        assert (doc.name, doc.version, doc.content_type, doc.metadata["kind"]) == ("note.md", 1, "md", "fact")
        again = client.data.add_document("space", b"The moon is 384,400 km away.", name="note.md")
        assert again.version == 2
        hits = client.data.search("space", "how far is the moon")
        assert hits[0].document == "note.md" and hits[0].version == 2
        assert client.data.search(["space"], "moon", mode="keyword")[0].keyword_score
        assert [d.version for d in client.data.list_documents("space", all_versions=True)] == [1, 2]
        with pytest.raises(NotFoundError):
            client.data.search("nowhere", "moon")
        ds = client.data.upload_dataset("qa", b'{"prompt": "2+2=", "completion": "4"}\n')
        assert (ds.format, ds.lines) == ("completion", 1)
        with pytest.raises(BadRequestError, match="line 1"):
            client.data.upload_dataset("bad", b'{"prompt": 1}\n')
        assert [d.name for d in client.data.list_datasets()] == ["qa"]
        answer = client.data.ask("fake:1", "how far away is the moon?", ["space"], top_k=1, max_tokens=4)
        assert answer.text and answer.completion_tokens == 4
        assert [(c.document, c.version, c.chunk) for c in answer.citations] == [("note.md", 2, 0)]
        assert [d.version for d in client.data.delete_documents("space", "note.md")] == [1, 2]


@pytest.mark.anyio
async def test_async_sdk(live_url: str) -> None:
    async with AsyncClient(live_url) as client:
        await client.data.create_collection("notes")
        await client.data.add_document("notes", b"Async clients await their answers.", name="a.txt")
        hits = await client.data.search("notes", "await answers")
        assert hits[0].document == "a.txt"
        assert [c.name for c in await client.data.list_collections()] == ["notes"]


def test_cli_docs_add_folder_search_list_rm(live_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    (folder / "sub").mkdir(parents=True)
    (folder / "rockets.md").write_text("Rockets burn fuel to reach orbit.")
    (folder / "sub" / "bread.txt").write_text("Bread needs flour, water and yeast.")
    (folder / "page.html").write_text("<p>Tomatoes need sun.</p>")
    (folder / "image.png").write_bytes(b"\x89PNG")  # not a document: skipped
    (folder / ".hidden.md").write_text("skipped")
    runner = CliRunner()
    r = runner.invoke(app, ["docs", "add", "--collection", "kb", str(folder)])
    assert r.exit_code == 0, r.output
    assert "3 document(s)" in r.output
    r = runner.invoke(app, ["docs", "search", "--collection", "kb", "how do rockets reach orbit"])
    assert r.exit_code == 0, r.output
    first = r.output.splitlines()[0]
    assert first.startswith("1. rockets.md v1 #0") and "score" in first
    r = runner.invoke(app, ["docs", "search", "-c", "kb", "--json", "flour"])
    assert json.loads(r.output)[0]["document"] == "sub/bread.txt"
    r = runner.invoke(
        app, ["docs", "ask", "-c", "kb", "-m", "fake:1", "--max-tokens", "5", "what do tomatoes need?"]
    )
    assert r.exit_code == 0, r.output
    assert "[1] page.html v1 #0" in r.output
    r = runner.invoke(app, ["docs", "list"])
    assert "kb" in r.output and "3" in r.output
    r = runner.invoke(app, ["docs", "list", "--collection", "kb"])
    assert "sub/bread.txt" in r.output and "page.html" in r.output
    r = runner.invoke(app, ["docs", "rm", "--collection", "kb", "page.html"])
    assert r.exit_code == 0 and "removed page.html (1 version(s))" in r.output
    r = runner.invoke(app, ["docs", "rm", "--collection", "kb", "page.html"])
    assert r.exit_code == 3 and "no document named" in r.output
    r = runner.invoke(app, ["docs", "search", "--collection", "missing", "x"])
    assert r.exit_code == 3


class RegistryEmbedder(HashEmbedder):
    """Embeds only with models the registry holds, as the kernel does (ModelNotFound otherwise)."""

    def __init__(self, registry: MemoryRegistry) -> None:
        super().__init__()
        self.registry = registry

    async def __call__(self, model: str, texts: list[str], tenant: str) -> list[list[float]]:
        self.registry.resolve(model)
        return await super().__call__(model, texts, tenant)


@pytest.fixture
def pulling_server(
    tmp_path: Path, llmos_home: Path, monkeypatch: pytest.MonkeyPatch, serve_app: Callable[..., str]
) -> Iterator[RegistryEmbedder]:
    """A server whose collections embed with registry models; ``cat:embed`` is in its catalog."""
    registry = MemoryRegistry(tmp_path, [manifest("fake:1")], catalog=[manifest("cat:embed")])
    embedder = RegistryEmbedder(registry)
    for _url in _served(tmp_path, monkeypatch, serve_app, registry, embedder):
        yield embedder


def _folder(tmp_path: Path, *bad: str) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("a.md", "b.md", "c.txt"):
        (folder / name).write_text(f"{name} is about rockets and orbits.")
    for name in bad:
        (folder / name).write_bytes(b"%PDF-1.7 not really a pdf")
    return folder


def test_docs_add_pulls_the_embedding_model_on_first_use(
    pulling_server: RegistryEmbedder, tmp_path: Path
) -> None:
    r = CliRunner().invoke(
        app, ["docs", "add", "-c", "kb", "--embedding-model", "cat:embed", str(_folder(tmp_path))]
    )
    assert r.exit_code == 0, r.output
    assert "pulling cat:embed, the collection's embedding model" in r.stderr
    assert "3 document(s)" in r.stdout and "created collection kb (embeddings by cat:embed)" in r.stderr


def test_a_failed_docs_add_reports_once_and_leaves_no_empty_collection(
    pulling_server: RegistryEmbedder, tmp_path: Path
) -> None:
    r = CliRunner().invoke(
        app, ["docs", "add", "-c", "kb", "--embedding-model", "ghost:1", str(_folder(tmp_path))]
    )
    assert r.exit_code == 3, r.output
    assert r.stderr.count("error:") == 1 and "model 'ghost:1' not found" in r.stderr
    assert "created collection" not in r.output and "failed" not in r.output
    assert pulling_server.calls == [], "no file was embedded: the model was looked for once"
    with Client(os.environ["LLMOS_BASE_URL"]) as client:
        assert [c.name for c in client.data.list_collections()] == []


def test_one_bad_file_fails_alone_and_the_collection_keeps_the_rest(
    pulling_server: RegistryEmbedder, tmp_path: Path
) -> None:
    folder = _folder(tmp_path, "broken.pdf", "also-broken.pdf")
    r = CliRunner().invoke(app, ["docs", "add", "-c", "kb", "--embedding-model", "fake:1", str(folder)])
    assert r.exit_code == 1, r.output
    assert "3 document(s)" in r.stdout
    failed = [line for line in r.stderr.splitlines() if line.startswith("failed")]
    assert failed == [
        f"failed 1 file(s) ({name}): {name} is not a readable PDF: Stream has ended unexpectedly"
        for name in ("also-broken.pdf", "broken.pdf")
    ], r.stderr


def test_cli_datasets(live_url: str, tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n')
    runner = CliRunner()
    r = runner.invoke(app, ["datasets", "add", "greet", str(good)])
    assert r.exit_code == 0 and "1 chat examples" in r.output, r.output
    r = runner.invoke(app, ["datasets", "add", "broken", str(bad)])
    assert r.exit_code == 2 and "line 1" in r.output
    r = runner.invoke(app, ["datasets", "list"])
    assert "greet" in r.output and "chat" in r.output
