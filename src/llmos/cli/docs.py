"""``llmos docs``: collections of documents on the server, and searching them.

llmos docs add --collection handbook ./policies/          # every txt/md/html/pdf/json/jsonl
llmos docs search --collection handbook "paid leave"      # ranked hits with document names
llmos docs list [--collection handbook] [--all-versions]
llmos docs rm --collection handbook leave.md
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from llmos.cli.errors import handle_errors
from llmos.cli.runtime import require_server

if TYPE_CHECKING:
    from llmos.sdk import Client
    from llmos.sdk.data import CollectionInfo

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

SUFFIXES = frozenset(
    {".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf", ".json", ".jsonl", ".ndjson"}
)
"""What ``docs add`` picks up from a folder (a file named on the command line is always taken)."""

docs_app = typer.Typer(
    help="Documents: upload, search, list and remove collections' documents.", rich_markup_mode=None
)

CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection name")]


def collect_files(paths: list[Path]) -> list[tuple[Path, str]]:
    """(file, document name) for each path: a file is itself; a folder gives its supported files,
    named by their path relative to the folder. Raises typer.BadParameter for a missing path."""
    found: list[tuple[Path, str]] = []
    for p in paths:
        if p.is_file():
            found.append((p, p.name))
        elif p.is_dir():
            for f in sorted(p.rglob("*")):
                if (
                    f.is_file()
                    and f.suffix.lower() in SUFFIXES
                    and not any(part.startswith(".") for part in f.relative_to(p).parts)
                ):
                    found.append((f, f.relative_to(p).as_posix()))
        else:
            raise typer.BadParameter(f"{p} does not exist", param_hint="PATHS")
    return found


FILE_ERRORS = frozenset({400, 413, 415, 422})
"""Statuses that belong to one file (unreadable, too large, unsupported): the others go on.
Anything else (the embedding model, the server) would fail every file alike: the upload stops."""


def _open_collection(client: Client, name: str, embedding_model: str | None) -> tuple[CollectionInfo, bool]:
    """The collection, and whether this command created it."""
    from llmos.sdk.errors import NotFoundError

    try:
        return client.data.get_collection(name), False
    except NotFoundError:
        return client.data.create_collection(name, embedding_model=embedding_model), True


def _drop_if_empty(client: Client, name: str) -> None:
    """Delete a collection this command created when it holds no document (leave nothing behind)."""
    from llmos.sdk.errors import LLMOSClientError

    with contextlib.suppress(LLMOSClientError):
        if client.data.get_collection(name).documents == 0:
            client.data.delete_collection(name)


def _pull_embedding_model(client: Client, model: str) -> None:
    """Pull a collection's embedding model on first use, as ``llmos run`` pulls a chat model."""
    from llmos.cli.runtime import PullProgress

    err.print(f"pulling {escape(model)}, the collection's embedding model")
    with PullProgress(f"pulling {model}") as bar:
        client.models.pull(model, progress=bar)


def _upload(
    client: Client,
    collection: CollectionInfo,
    files: list[tuple[Path, str]],
    content_type: str | None,
    meta: dict[str, Any] | None,
) -> tuple[int, int, dict[str, list[str]]]:
    """Upload ``files``: (documents added, chunks, failed file names by error message). Raises
    the first error that is not one file's own (see :data:`FILE_ERRORS`)."""
    from llmos.sdk.errors import APIStatusError, NotFoundError

    added = chunks = 0
    failures: dict[str, list[str]] = {}
    pulled = False
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True, disable=len(files) < 2) as bar:
        task = bar.add_task("uploading", total=len(files))
        for path, name in files:
            bar.update(task, description=name[-40:])
            while True:
                try:
                    doc = client.data.add_document(
                        collection.name, path, name=name, content_type=content_type, metadata=meta
                    )
                except NotFoundError as exc:
                    if pulled or exc.code != "model_not_found":
                        raise
                    bar.stop()
                    _pull_embedding_model(client, collection.embedding_model)
                    bar.start()
                    pulled = True
                    continue
                except APIStatusError as exc:
                    if exc.status_code not in FILE_ERRORS or len(files) == 1:
                        raise
                    failures.setdefault(exc.message, []).append(name)
                else:
                    added += 1
                    chunks += doc.chunks
                    if len(files) == 1 or not err.is_terminal:
                        out.print(f"added {escape(name)} v{doc.version} ({doc.chunks} chunks)")
                break
            bar.advance(task)
    return added, chunks, failures


def add(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to upload")],
    collection: CollectionOpt,
    metadata: Annotated[
        str | None, typer.Option(help='JSON object stored with each document, e.g. {"team":"hr"}')
    ] = None,
    content_type: Annotated[
        str | None, typer.Option(help="Force a format: txt, md, html, pdf, json, jsonl")
    ] = None,
    embedding_model: Annotated[
        str | None, typer.Option(help="Embedding model of a collection created here (default minilm:l6)")
    ] = None,
) -> None:
    """Upload documents (a folder: every supported file in it); a known name becomes a new version.

    A collection that does not exist is created (and removed again if nothing could be added);
    its embedding model is pulled on first use."""
    meta: dict[str, Any] | None = json.loads(metadata) if metadata else None
    if meta is not None and not isinstance(meta, dict):
        raise typer.BadParameter("must be a JSON object", param_hint="--metadata")
    files = collect_files(paths)
    if not files:
        raise typer.BadParameter("no txt, md, html, pdf, json or jsonl files found", param_hint="PATHS")
    with require_server() as client:
        info, created = _open_collection(client, collection, embedding_model)
        try:
            added, chunks, failures = _upload(client, info, files, content_type, meta)
        except BaseException:
            if created:
                _drop_if_empty(client, collection)
            raise
        if created and added == 0:
            _drop_if_empty(client, collection)
    if created and added:
        err.print(f"created collection {escape(collection)} (embeddings by {escape(info.embedding_model)})")
    out.print(f"{added} document(s), {chunks} chunks added to {escape(collection)}")
    for why, names in failures.items():
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        err.print(f"[red]failed[/] {len(names)} file(s) ({escape(shown)}): {escape(why)}")
    if failures:
        raise typer.Exit(1)


def search(
    query: Annotated[str, typer.Argument(help="What to look for")],
    collection: Annotated[
        list[str], typer.Option("--collection", "-c", help="Collection (repeat for several)")
    ],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=100)] = 5,
    mode: Annotated[str, typer.Option(help="hybrid, vector or keyword")] = "hybrid",
    as_json: Annotated[bool, typer.Option("--json", help="Print the hits as JSON")] = False,
) -> None:
    """Search collections: hits ranked best first, with their document names."""
    with require_server() as client:
        target: str | list[str] = collection[0] if len(collection) == 1 else collection
        hits = client.data.search(target, query, top_k=top_k, mode=mode)
    if as_json:
        out.print_json(json.dumps([h.__dict__ for h in hits]))
        return
    if not hits:
        out.print("no matches")
        return
    for rank, h in enumerate(hits, start=1):
        where = f"{h.document} v{h.version} #{h.chunk}" + (
            f" [{h.collection}]" if len(collection) > 1 else ""
        )
        out.print(f"[bold]{rank}. {escape(where)}[/]  score {h.score:.4f}")
        snippet = " ".join(h.text.split())
        out.print(f"   {escape(snippet[:300])}{'…' if len(snippet) > 300 else ''}")


def ask(
    question: Annotated[str, typer.Argument(help="Your question")],
    collection: Annotated[
        list[str], typer.Option("--collection", "-c", help="Collection (repeat for several)")
    ],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Chat model (default: LLMOS_DEFAULT_MODEL)")
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=20)] = 4,
    max_tokens: Annotated[int, typer.Option(help="Longest answer")] = 512,
) -> None:
    """Answer a question from collections (retrieval-augmented chat), citing the passages used."""
    from llmos.config import load_config

    chat_model = model or load_config().default_model
    with require_server() as client:
        answer = client.data.ask(chat_model, question, collection, top_k=top_k, max_tokens=max_tokens)
    out.print(escape(answer.text.strip()))
    if answer.citations:
        out.print()
        for n, c in enumerate(answer.citations, start=1):
            out.print(f"[{n}] {escape(c.document)} v{c.version} #{c.chunk}  score {c.score:.4f}")


def list_(
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="List this collection's documents")
    ] = None,
    all_versions: Annotated[bool, typer.Option("--all-versions", help="Older versions too")] = False,
) -> None:
    """List collections, or a collection's documents."""
    with require_server() as client:
        if collection is None:
            table = Table(box=None)
            for col in ("COLLECTION", "DOCUMENTS", "CHUNKS", "EMBEDDING MODEL", "DIM"):
                table.add_column(col)
            for c in client.data.list_collections():
                table.add_row(
                    c.name, str(c.documents), str(c.chunks), c.embedding_model, str(c.dimensions or "-")
                )
            out.print(table)
            return
        docs = client.data.list_documents(collection, all_versions=all_versions)
    table = Table(box=None)
    for col in ("ID", "NAME", "VERSION", "TYPE", "SIZE", "CHUNKS", "TOKENS", "CREATED"):
        table.add_column(col)
    for d in docs:
        version = f"{d.version}" + ("" if d.latest else " (old)")
        table.add_row(
            str(d.id),
            d.name,
            version,
            d.content_type,
            str(d.size),
            str(d.chunks),
            str(d.tokens),
            str(d.created_at or "")[:19],
        )
    out.print(table)


def rm(
    names: Annotated[list[str], typer.Argument(help="Document names (every version of each)")],
    collection: CollectionOpt,
) -> None:
    """Remove documents (all their versions) from a collection."""
    with require_server() as client:
        for name in names:
            gone = client.data.delete_documents(collection, name)
            out.print(f"removed {escape(name)} ({len(gone)} version(s))")


def rm_version(
    document_id: Annotated[
        int, typer.Argument(help="The version's id (see 'llmos docs list --all-versions')")
    ],
    collection: CollectionOpt,
) -> None:
    """Remove one version of a document (the previous one becomes current)."""
    with require_server() as client:
        gone = client.data.delete_document(collection, document_id)
    out.print(f"removed {escape(gone.name)} v{gone.version}")


def create(
    name: Annotated[str, typer.Argument(help="Collection name")],
    embedding_model: Annotated[str | None, typer.Option(help="Default minilm:l6")] = None,
    chunk_tokens: Annotated[int | None, typer.Option(help="Tokens per chunk (default 200)")] = None,
    chunk_overlap: Annotated[
        int | None, typer.Option(help="Tokens shared by neighbouring chunks (default 30)")
    ] = None,
) -> None:
    """Create an empty collection with its embedding model and chunking."""
    with require_server() as client:
        c = client.data.create_collection(
            name, embedding_model=embedding_model, chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap
        )
    out.print(f"created {escape(c.name)} ({c.embedding_model}, {c.chunk_tokens} tokens per chunk)")


def drop(name: Annotated[str, typer.Argument(help="Collection name")]) -> None:
    """Delete a collection with all its documents."""
    with require_server() as client:
        client.data.delete_collection(name)
    out.print(f"deleted collection {escape(name)}")


def register(app: typer.Typer) -> None:
    for command, fn in (
        ("add", add),
        ("search", search),
        ("ask", ask),
        ("list", list_),
        ("rm", rm),
        ("rm-version", rm_version),
        ("create", create),
        ("drop", drop),
    ):
        docs_app.command(command)(handle_errors(fn))
    app.add_typer(docs_app, name="docs")
