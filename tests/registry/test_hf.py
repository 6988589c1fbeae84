from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmos.errors import IntegrityError, ModelNotFound, SourceUnavailable
from llmos.registry.registry import Registry
from llmos.registry.sources.hf import HfSource
from llmos.storage.db import Database

from .helpers import make_registry, snapshot, write_gguf

NAME = "hf.co/TestOrg/Tiny-GGUF:Tiny.Q8_0.gguf"


def hub(data: bytes, *, status: int = 200, sha: str | None = None) -> tuple[HfSource, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/TestOrg/Tiny-GGUF/resolve/main/Tiny.Q8_0.gguf":
            return httpx.Response(302, headers={"location": "https://cdn.example/blob"})
        if request.url.host == "cdn.example" and status == 200:
            headers = {"x-linked-etag": f'"{sha or hashlib.sha256(data).hexdigest()}"'}
            return httpx.Response(200, content=data, headers=headers)
        return httpx.Response(status)

    return HfSource("https://hub.example", transport=httpx.MockTransport(handler)), seen


def test_pull_from_the_hub(llmos_home: Path, db: Database, tmp_path: Path) -> None:
    data = write_gguf(tmp_path / "t.gguf", seed=7).read_bytes()
    source, seen = hub(data)
    reg = make_registry(llmos_home, db, hub=source)
    m = reg.pull(NAME)
    assert m.name == "hf.co/testorg/tiny-gguf:tiny.q8_0"
    assert m.digest == hashlib.sha256(data).hexdigest() and m.source == "hf:TestOrg/Tiny-GGUF:Tiny.Q8_0.gguf"
    assert m.files[0].path == "Tiny.Q8_0.gguf" and m.architecture == "llama"
    assert reg.resolve(NAME) == m and reg.resolve(m.name) == m
    assert str(seen[0].url) == "https://hub.example/TestOrg/Tiny-GGUF/resolve/main/Tiny.Q8_0.gguf"


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"status": 404}, ModelNotFound, "was not found"),
        ({"status": 403}, SourceUnavailable, "gated"),
        ({"status": 500}, SourceUnavailable, "HTTP 500"),
        ({"sha": "0" * 64}, IntegrityError, "checksum mismatch"),
    ],
)
def test_hub_failures_leave_nothing(
    llmos_home: Path, db: Database, tmp_path: Path, kw: dict[str, Any], error: type[Exception], match: str
) -> None:
    data = write_gguf(tmp_path / "t.gguf").read_bytes()
    reg = make_registry(llmos_home, db, hub=hub(data, **kw)[0])
    before = snapshot(llmos_home, db)
    with pytest.raises(error, match=match):
        reg.pull(NAME)
    assert snapshot(llmos_home, db) == before


def test_not_a_gguf_from_the_hub(llmos_home: Path, db: Database) -> None:
    from llmos.errors import InvalidModelFile

    reg = make_registry(llmos_home, db, hub=hub(b"<html>login</html>")[0])
    before = snapshot(llmos_home, db)
    with pytest.raises(InvalidModelFile):
        reg.pull(NAME)
    assert snapshot(llmos_home, db) == before


def test_unreachable_hub_says_cannot_reach(llmos_home: Path, db: Database) -> None:
    # The real transport against a closed loopback port: what a machine without the hub sees.
    reg: Registry = make_registry(llmos_home, db, hub=HfSource("http://127.0.0.1:9", timeout=5))
    before = snapshot(llmos_home, db)
    with pytest.raises(SourceUnavailable, match=r"cannot reach http://127.0.0.1:9"):
        reg.pull(NAME)
    assert snapshot(llmos_home, db) == before
