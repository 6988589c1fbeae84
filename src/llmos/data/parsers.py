"""Turning uploaded bytes into text: txt, md, html, pdf (pypdf), json and jsonl.

The format comes from an explicit content type, else the file name's extension, else plain
text. Every parser raises InvalidRequest with the reason when the bytes are not what they claim.
"""

from __future__ import annotations

import io
import json
import logging
from html.parser import HTMLParser
from typing import Any

from llmos.errors import InvalidRequest

log = logging.getLogger(__name__)

FORMATS = ("txt", "md", "html", "pdf", "json", "jsonl")
_EXTENSIONS = {
    "txt": "txt",
    "text": "txt",
    "log": "txt",
    "md": "md",
    "markdown": "md",
    "html": "html",
    "htm": "html",
    "pdf": "pdf",
    "json": "json",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
}
_MIME = {
    "text/plain": "txt",
    "text/markdown": "md",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    "application/json": "json",
    "application/jsonl": "jsonl",
    "application/x-ndjson": "jsonl",
    "application/jsonlines": "jsonl",
}


def known_format(content_type: str | None) -> str | None:
    """The format a MIME type (or format name) stands for, or None when it names none of ours
    (``curl --data-binary`` sends ``application/x-www-form-urlencoded`` for any file)."""
    ct = (content_type or "").split(";")[0].strip().lower()
    return ct if ct in FORMATS else _MIME.get(ct)


def detect_format(name: str, content_type: str | None = None) -> str:
    """One of :data:`FORMATS`: ``content_type`` (a format or a MIME type) wins over the extension.

    Raises InvalidRequest for a content type llmos cannot parse.
    """
    if content_type:
        ct = content_type.split(";")[0].strip().lower()
        if ct in FORMATS:
            return ct
        if ct in _MIME:
            return _MIME[ct]
        if ct not in ("application/octet-stream", ""):
            raise InvalidRequest(
                f"unsupported content type {content_type!r}; use one of {', '.join(FORMATS)}",
                param="content_type",
            )
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _EXTENSIONS.get(ext, "txt")


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"{name} is not UTF-8 text (byte {exc.start}); convert it to UTF-8 or upload it as a PDF",
            param="file",
        ) from None


class _HTMLText(HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template", "head"})
    _BLOCK = frozenset(
        {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in self._SKIP:
            self.skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n" if tag in ("p", "div", "section", "article") or tag[0] == "h" else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self._SKIP and self.skipping:
            self.skipping -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML page (scripts, styles and the head dropped), blocks on new lines."""
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    body = text.strip()
    title = " ".join(parser.title.split())
    return f"{title}\n\n{body}" if title and not body.startswith(title) else body


def pdf_to_text(data: bytes, name: str) -> str:
    """Text of every page, pages separated by blank lines. Raises InvalidRequest for a bad PDF."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest(f"{name} is not a readable PDF: {exc}", param="file") from None
    return "\n\n".join(p.strip() for p in pages if p.strip())


def _flatten(value: Any, prefix: str, out: list[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(value, list) and not all(isinstance(v, (str, int, float, bool)) for v in value):
        for i, v in enumerate(value):
            _flatten(v, f"{prefix}[{i}]", out)
    else:
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        out.append(f"{prefix}: {shown}" if prefix else str(shown))


def json_to_text(value: Any) -> str:
    """``key.path: value`` lines: field names stay next to their values for keyword search."""
    lines: list[str] = []
    _flatten(value, "", lines)
    return "\n".join(lines)


def jsonl_to_text(text: str, name: str) -> str:
    """One paragraph per record. Raises InvalidRequest naming the first bad line."""
    records: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"{name} line {number}: invalid JSON: {exc.msg}", param="file") from None
        records.append(json_to_text(value))
    return "\n\n".join(records)


def extract_text(data: bytes, name: str, fmt: str) -> str:
    """The text of a document in format ``fmt`` (see :func:`detect_format`)."""
    if fmt == "pdf":
        return pdf_to_text(data, name)
    text = _decode(data, name)
    if fmt == "html":
        return html_to_text(text)
    if fmt == "json":
        try:
            return json_to_text(json.loads(text))
        except json.JSONDecodeError as exc:
            raise InvalidRequest(
                f"{name}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", param="file"
            ) from None
    if fmt == "jsonl":
        return jsonl_to_text(text, name)
    return text
