"""Hugging Face hub pulls: ``hf.co/<org>/<repo>:<file>.gguf`` over httpx.

The transport is injectable (``httpx.MockTransport`` in tests). When the hub cannot be reached
the pull fails with SourceUnavailable ("cannot reach ...") and leaves nothing behind.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmos.errors import InvalidModelName, ModelNotFound, SourceUnavailable

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

PREFIXES = ("hf.co/", "huggingface.co/")
_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.gguf$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20


@dataclass(frozen=True)
class HfRef:
    org: str
    repo: str
    file: str
    revision: str = "main"

    @property
    def family(self) -> str:
        return f"hf.co/{self.org}/{self.repo}".lower()

    @property
    def tag(self) -> str:
        stem = self.file.removesuffix(".gguf").lower()
        return re.sub(r"[^a-z0-9._-]", "-", stem)[:127]

    @property
    def local_name(self) -> str:
        """The ``family:tag`` the pulled model is registered under."""
        return f"{self.family}:{self.tag}"

    @property
    def source(self) -> str:
        return f"hf:{self.org}/{self.repo}:{self.file}"


def parse_hf_name(raw: str) -> HfRef | None:
    """An HfRef for ``hf.co/org/repo:file.gguf`` (or ``huggingface.co/...``); None for other names
    (including the local ``family:tag`` a hub pull registers, which :func:`parse_name` handles).

    Raises InvalidModelName for a hub name that is malformed.
    """
    text = raw.strip()
    prefix = next((p for p in PREFIXES if text.lower().startswith(p)), None)
    if prefix is None:
        return None
    hint = "hub names look like 'hf.co/<org>/<repo>:<file>.gguf'"
    rest = text[len(prefix) :]
    repo_part, sep, file = rest.partition(":")
    if sep and not file.lower().endswith(".gguf"):
        return None  # a registered name such as ``hf.co/org/repo:q4_k_m``, not a download
    parts = repo_part.split("/")
    if not sep or len(parts) != 2 or not all(_PART.match(p) and ".." not in p for p in parts):
        raise InvalidModelName(f"invalid hub model name {raw!r}; {hint}", param="model")
    if not _FILE.match(file) or ".." in file:
        raise InvalidModelName(f"invalid file {file!r} in {raw!r}; {hint}", param="model")
    return HfRef(org=parts[0], repo=parts[1], file=file)


@dataclass(frozen=True)
class HfDownload:
    """An open download: iterate ``chunks``; ``total`` and ``sha256`` come from the headers."""

    chunks: Iterator[bytes]
    total: int | None
    sha256: str | None


class HfSource:
    def __init__(
        self,
        endpoint: str = "https://huggingface.co",
        *,
        transport: httpx.BaseTransport | None = None,
        token: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._transport = transport
        self._token = token
        self._timeout = timeout

    def url(self, ref: HfRef) -> str:
        return f"{self.endpoint}/{ref.org}/{ref.repo}/resolve/{ref.revision}/{ref.file}"

    @contextmanager
    def open(self, ref: HfRef) -> Iterator[HfDownload]:
        """Stream the file. Raises SourceUnavailable (unreachable, refused, server error) or
        ModelNotFound (no such repo or file)."""
        import httpx  # on use: every registry command builds this source, few pull from the hub

        headers = {"User-Agent": "llmos"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        url = self.url(ref)
        try:
            with (
                httpx.Client(
                    transport=self._transport, timeout=self._timeout, follow_redirects=True, headers=headers
                ) as client,
                client.stream("GET", url) as resp,
            ):
                self._check(resp, ref)
                length = resp.headers.get("content-length")
                etag = (
                    (resp.headers.get("x-linked-etag") or resp.headers.get("etag") or "").strip('"').lower()
                )
                yield HfDownload(
                    chunks=resp.iter_bytes(CHUNK),
                    total=int(length) if length and length.isdigit() else None,
                    sha256=etag if _SHA.match(etag) else None,
                )
        except httpx.TransportError as exc:
            raise SourceUnavailable(
                f"cannot reach {self.endpoint} to fetch {ref.source} ({type(exc).__name__}: {exc}); "
                "check your network connection or set LLMOS_HF_ENDPOINT to a reachable mirror",
            ) from exc

    def _check(self, resp: httpx.Response, ref: HfRef) -> None:
        if resp.status_code == 404:
            raise ModelNotFound(
                f"{ref.file} was not found in hf.co/{ref.org}/{ref.repo}; check the repository and file name",
                param="model",
            )
        if resp.status_code in (401, 403):
            raise SourceUnavailable(
                f"hf.co/{ref.org}/{ref.repo} refused access (HTTP {resp.status_code}); the repository may be "
                "gated or private",
            )
        if resp.status_code >= 400:
            raise SourceUnavailable(
                f"{self.endpoint} answered HTTP {resp.status_code} for {ref.source}; try again later"
            )
