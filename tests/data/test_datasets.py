"""Datasets: line-by-line validation, storage by content hash, versions, deletion."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from llmos.data.datasets import DatasetService, validate_jsonl
from llmos.data.tokens import ApproxTokenizer
from llmos.errors import InvalidRequest, NotFound
from llmos.storage.blobs import BlobStore
from llmos.storage.data_datasets import DatasetStore
from llmos.storage.db import Database

pytestmark = pytest.mark.anyio
TOK = ApproxTokenizer()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _lines(*records: object) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


CHAT = {
    "messages": [
        {"role": "system", "content": "Be nice"},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
    ]
}
PAIR = {"prompt": "2+2=", "completion": "4"}


def test_both_forms_are_accepted_and_counted() -> None:
    stats = validate_jsonl(_lines(CHAT, CHAT), TOK)
    assert (stats.format, stats.line_count, stats.token_count) == ("chat", 2, 2 * (2 + 1 + 2))
    stats = validate_jsonl(_lines(PAIR) + b"\n" + _lines(PAIR), TOK)
    assert (stats.format, stats.line_count) == ("completion", 2)
    tool_call = {
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
        ]
    }
    assert validate_jsonl(_lines(tool_call), TOK).line_count == 1


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([CHAT, {"messages": []}], ['line 2: "messages" must be a non-empty list']),
        (
            [CHAT, {"messages": [{"role": "robot", "content": "x"}]}],
            ["line 2: messages[0].role must be one of"],
        ),
        (
            [CHAT, {"messages": [{"role": "user", "content": "only a question"}]}],
            ["line 2: no assistant message"],
        ),
        (
            [CHAT, {"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "x"}]}],
            ["line 2: messages[0].content must be a string"],
        ),
        ([PAIR, {"prompt": "x"}], ['line 2: "completion" must be a string']),
        ([PAIR, {"prompt": "x", "completion": " "}], ['line 2: "completion" is empty']),
        ([PAIR, CHAT], ["line 2: chat form, but the file started in completion form"]),
        ([PAIR, [1, 2]], ["line 2: expected a JSON object, got list"]),
        ([PAIR, {"text": "x"}], ['line 2: expected "messages" (chat form) or "prompt" and "completion"']),
    ],
)
def test_each_bad_line_is_reported_with_its_number(records: list[object], expected: list[str]) -> None:
    with pytest.raises(InvalidRequest) as info:
        validate_jsonl(_lines(*records), TOK)
    for text in expected:
        assert text in info.value.message


def test_syntax_errors_and_encoding_give_line_numbers_and_errors_are_capped() -> None:
    data = _lines(PAIR) + b'{"prompt": "x",\n' + b"\xff\xfe\n" + _lines(PAIR)
    with pytest.raises(InvalidRequest) as info:
        validate_jsonl(data, TOK)
    assert "line 2: invalid JSON" in info.value.message and "line 3: not UTF-8" in info.value.message
    assert "2 invalid line(s)" in info.value.message
    with pytest.raises(InvalidRequest) as info:
        validate_jsonl(b"oops\n" * 100, TOK)
    assert "line 20:" in info.value.message and "line 21:" not in info.value.message
    assert "maybe more" in info.value.message
    with pytest.raises(InvalidRequest, match="empty"):
        validate_jsonl(b"\n\n", TOK)


@pytest.fixture
def datasets(database: Database, tmp_path: Path) -> DatasetService:
    return DatasetService(DatasetStore(database), BlobStore(tmp_path / "blobs", tmp_path / "tmp"), TOK)


async def test_stored_by_content_hash_versioned_and_deleted_with_their_blob(
    datasets: DatasetService, tmp_path: Path
) -> None:
    data = _lines(CHAT, CHAT, CHAT)
    first = await datasets.upload("acme", "support", data)
    digest = hashlib.sha256(data).hexdigest()
    assert (first.digest, first.size, first.line_count, first.version) == (digest, len(data), 3, 1)
    path = await datasets.path("acme", first.id)
    assert path == tmp_path / "blobs" / f"sha256-{digest}" and path.read_bytes() == data
    assert not any((tmp_path / "tmp").iterdir()), "no temp file is left behind"
    again = await datasets.upload("acme", "support", data)
    other = await datasets.upload("globex", "copy", data)
    assert again.version == 2 and other.version == 1
    assert [p.name for p in (tmp_path / "blobs").iterdir()] == [f"sha256-{digest}"], "same bytes, one blob"
    assert [d.version for d in await datasets.list("acme")] == [1, 2]
    assert [d.name for d in await datasets.list("globex")] == ["copy"]
    with pytest.raises(NotFound):
        await datasets.get("globex", first.id)
    await datasets.delete("acme", first.id)
    await datasets.delete("acme", again.id)
    assert path.exists(), "globex still uses the blob"
    await datasets.delete("globex", other.id)
    assert not path.exists()


async def test_an_invalid_dataset_stores_nothing(datasets: DatasetService, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="line 2"):
        await datasets.upload("acme", "bad", _lines(PAIR, {"prompt": 1}))
    assert await datasets.list("acme") == []
    assert not (tmp_path / "blobs").exists() or not any((tmp_path / "blobs").iterdir())
    with pytest.raises(InvalidRequest, match="invalid dataset name"):
        await datasets.upload("acme", "../x", _lines(PAIR))
