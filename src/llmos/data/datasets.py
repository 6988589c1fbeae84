"""Fine-tuning datasets: JSONL validated line by line, stored by content hash.

Two forms are accepted, one per file:

- chat: ``{"messages": [{"role": "system"|"user"|"assistant"|"tool", "content": "..."}, ...]}``
  with at least one assistant message;
- completion: ``{"prompt": "...", "completion": "..."}``.

Every problem is reported with its line number (the first :data:`MAX_ERRORS` of them, in one
InvalidRequest). Bytes go to the blob store (temp file → sha256 → rename), then a row records
name, version, size, line and token counts.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmos.data.tokens import Tokenizer
from llmos.domain.data import Dataset, DatasetFormat
from llmos.errors import InvalidRequest, PayloadTooLarge
from llmos.storage.blobs import BlobStore
from llmos.storage.data_datasets import DatasetStore

MAX_ERRORS = 20
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._:/ -]{0,199}$")
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$")


@dataclass(frozen=True)
class DatasetStats:
    format: DatasetFormat
    line_count: int
    token_count: int


def _chat_problems(value: dict[str, Any], tokenizer: Tokenizer) -> tuple[list[str], int]:
    messages = value.get("messages")
    if not isinstance(messages, list) or not messages:
        return ['"messages" must be a non-empty list'], 0
    problems: list[str] = []
    tokens = 0
    has_answer = False
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            problems.append(f"messages[{i}] must be an object")
            continue
        role = m.get("role")
        if role not in ROLES:
            problems.append(f"messages[{i}].role must be one of {', '.join(sorted(ROLES))} (got {role!r})")
        content = m.get("content")
        if content is None and role == "assistant" and m.get("tool_calls"):
            has_answer = True
            continue
        if not isinstance(content, str):
            problems.append(f"messages[{i}].content must be a string")
            continue
        tokens += tokenizer.count(content)
        if role == "assistant" and content.strip():
            has_answer = True
    if not has_answer and not problems:
        problems.append("no assistant message to learn from")
    return problems, tokens


def _completion_problems(value: dict[str, Any], tokenizer: Tokenizer) -> tuple[list[str], int]:
    problems = [
        f'"{key}" must be a string' for key in ("prompt", "completion") if not isinstance(value.get(key), str)
    ]
    if problems:
        return problems, 0
    if not value["completion"].strip():
        return ['"completion" is empty'], 0
    return [], tokenizer.count(value["prompt"]) + tokenizer.count(value["completion"])


def validate_jsonl(data: bytes, tokenizer: Tokenizer) -> DatasetStats:
    """Check every line; raises InvalidRequest listing the bad lines (``line N: why``)."""
    errors: list[str] = []
    fmt: DatasetFormat | None = None
    lines = tokens = 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if len(errors) >= MAX_ERRORS:
            break
        if not raw.strip():
            continue
        try:
            value = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            errors.append(f"line {number}: not UTF-8 (byte {exc.start})")
            continue
        except json.JSONDecodeError as exc:
            errors.append(f"line {number}: invalid JSON at column {exc.colno}: {exc.msg}")
            continue
        if not isinstance(value, dict):
            errors.append(f"line {number}: expected a JSON object, got {type(value).__name__}")
            continue
        kind: DatasetFormat | None = (
            "chat"
            if "messages" in value
            else "completion"
            if "prompt" in value or "completion" in value
            else None
        )
        if kind is None:
            errors.append(f'line {number}: expected "messages" (chat form) or "prompt" and "completion"')
            continue
        if fmt is None:
            fmt = kind
        elif kind != fmt:
            errors.append(f"line {number}: {kind} form, but the file started in {fmt} form; use one form")
            continue
        check = _chat_problems if kind == "chat" else _completion_problems
        problems, count = check(value, tokenizer)
        errors.extend(f"line {number}: {p}" for p in problems)
        if not problems:
            lines += 1
            tokens += count
    if errors:
        more = " (and maybe more)" if len(errors) >= MAX_ERRORS else ""
        raise InvalidRequest(
            f"the dataset has {len(errors)} invalid line(s){more}:\n" + "\n".join(errors), param="file"
        )
    if fmt is None:
        raise InvalidRequest("the dataset is empty: upload JSONL with one example per line", param="file")
    return DatasetStats(format=fmt, line_count=lines, token_count=tokens)


def check_name(name: str, what: str, *, path_like: bool = True) -> str:
    """``name`` stripped; raises InvalidRequest unless it is 1-200 of letters, digits, ``._:/ -``
    (without ``/``, ``:`` and spaces unless ``path_like``)."""
    clean = name.strip()
    ok = _NAME.match(clean) if path_like else _PLAIN_NAME.match(clean)
    if not ok or ".." in clean:
        allowed = ". _ : / - and spaces" if path_like else ". _ -"
        raise InvalidRequest(
            f"invalid {what} name {name!r}: use 1-200 letters, digits and {allowed} (no '..')", param="name"
        )
    return clean


class DatasetService:
    """Upload, list, read and delete a tenant's datasets."""

    def __init__(
        self, store: DatasetStore, blobs: BlobStore, tokenizer: Tokenizer, *, max_bytes: int = 1 << 30
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.tokenizer = tokenizer
        self.max_bytes = max_bytes

    async def upload(self, tenant: str, name: str, data: bytes) -> Dataset:
        """Validate, store by hash, record as the next version of ``name``."""
        return await asyncio.to_thread(self._upload, tenant, name, data)

    def _upload(self, tenant: str, name: str, data: bytes) -> Dataset:
        name = check_name(name, "dataset")
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(f"the dataset is {len(data)} bytes; the limit is {self.max_bytes}")
        stats = validate_jsonl(data, self.tokenizer)
        with self.blobs.writer(phase="storing dataset") as w:
            w.write(data)
            blob = w.commit()
        try:
            return self.store.add(
                tenant,
                name,
                format=stats.format,
                digest=blob.digest,
                size=blob.size,
                line_count=stats.line_count,
                token_count=stats.token_count,
            )
        except BaseException:
            if not self.store.in_use(blob.digest):
                self.blobs.delete(blob.digest)
            raise

    async def list(self, tenant: str) -> list[Dataset]:
        return await asyncio.to_thread(self.store.list, tenant)

    async def get(self, tenant: str, dataset_id: int) -> Dataset:
        return await asyncio.to_thread(self.store.get, tenant, dataset_id)

    async def path(self, tenant: str, dataset_id: int) -> Path:
        """Where the dataset's bytes are. Raises NotFound."""
        ds = await self.get(tenant, dataset_id)
        return self.blobs.require(ds.digest)

    def locate(self, tenant: str, dataset_id: int) -> tuple[Dataset, Path]:
        """The dataset and the file of its bytes (for a trainer). Blocking; raises NotFound."""
        ds = self.store.get(tenant, dataset_id)
        return ds, self.blobs.require(ds.digest)

    async def delete(self, tenant: str, dataset_id: int) -> Dataset:
        """Remove the dataset; its blob goes too unless another dataset has the same bytes."""
        gone, shared = await asyncio.to_thread(self.store.delete, tenant, dataset_id)
        if not shared:
            self.blobs.delete(gone.digest)
        return gone
