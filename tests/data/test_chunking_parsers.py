from __future__ import annotations

import io
import itertools
import json

import pytest

from llmos.data.chunking import chunk_text
from llmos.data.parsers import detect_format, extract_text, html_to_text
from llmos.data.tokens import ApproxTokenizer
from llmos.errors import InvalidRequest

TOK = ApproxTokenizer()


def test_approx_tokenizer_counts_words_punctuation_and_long_words() -> None:
    assert TOK.count("Hello, world!") == 4
    assert TOK.count("internationalization") == 4  # 20 chars in pieces of 6
    assert TOK.count("日本語") == 3, "non-ASCII words count one token per character"
    assert len(TOK.spans("Hello, internationalization")) == TOK.count("Hello, internationalization")


def test_chunks_respect_the_token_bound_overlap_and_cover_the_text() -> None:
    text = " ".join(f"word{i}." if i % 9 == 8 else f"word{i}" for i in range(1000))
    chunks = chunk_text(text, TOK, max_tokens=64, overlap=16)
    assert len(chunks) > 10
    assert all(c.token_count <= 64 and TOK.count(c.text) <= 64 for c in chunks)
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    for a, b in itertools.pairwise(chunks):
        assert b.start < a.end, "consecutive chunks overlap"
        assert b.start > a.start
        assert text[b.start : a.end].strip(), "the overlap holds text"
    # Every word is in some chunk.
    covered = " ".join(c.text for c in chunks)
    assert all(f"word{i}" in covered for i in range(0, 1000, 37))


def test_chunks_prefer_paragraph_and_sentence_ends() -> None:
    para = "This is a sentence about cats. " * 6
    text = (para.strip() + "\n\n") * 6
    chunks = chunk_text(text, TOK, max_tokens=60, overlap=0)
    assert all(c.text.endswith(".") for c in chunks), [c.text[-20:] for c in chunks]


def test_blank_text_has_no_chunks_and_bad_settings_are_refused() -> None:
    assert chunk_text("  \n\n ", TOK, 64, 8) == []
    with pytest.raises(InvalidRequest, match="chunk_overlap"):
        chunk_text("x", TOK, 64, 40)
    with pytest.raises(InvalidRequest, match="chunk_tokens"):
        chunk_text("x", TOK, 4, 0)


def test_format_detection() -> None:
    assert detect_format("a/b/notes.MD") == "md"
    assert detect_format("page.htm") == "html"
    assert detect_format("x.bin", "application/pdf") == "pdf"
    assert detect_format("x", "jsonl") == "jsonl"
    assert detect_format("README") == "txt"
    with pytest.raises(InvalidRequest, match="unsupported content type"):
        detect_format("x", "image/png")


def test_html_keeps_visible_text_only() -> None:
    html = (
        "<html><head><title>Guide</title><style>p{color:red}</style></head><body>"
        "<script>var secret = 1;</script><h1>Install</h1><p>Run <b>pip</b> install.</p>"
        "<ul><li>one</li><li>two</li></ul></body></html>"
    )
    text = html_to_text(html)
    assert "secret" not in text and "color" not in text
    assert text.startswith("Guide")
    assert "Install" in text and "Run pip install." in text
    assert "one\ntwo" in text.replace("\n\n", "\n")


def test_json_and_jsonl_become_key_value_text() -> None:
    data = json.dumps({"product": {"name": "Widget", "tags": ["blue", "small"]}, "price": 3}).encode()
    text = extract_text(data, "p.json", "json")
    assert "product.name: Widget" in text and "product.tags: blue, small" in text and "price: 3" in text
    lines = b'{"q": "why"}\n\n{"q": "how"}\n'
    assert extract_text(lines, "x.jsonl", "jsonl") == "q: why\n\nq: how"
    with pytest.raises(InvalidRequest, match="line 2"):
        extract_text(b'{"a": 1}\n{oops\n', "x.jsonl", "jsonl")
    with pytest.raises(InvalidRequest, match="invalid JSON"):
        extract_text(b"{", "x.json", "json")


def test_text_must_be_utf8() -> None:
    with pytest.raises(InvalidRequest, match="not UTF-8"):
        extract_text(b"caf\xe9", "x.txt", "txt")


def _pdf(text: str) -> bytes:
    """A one-page PDF whose content stream draws ``text`` (built by hand: no writer needed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def test_pdf_text_is_extracted_and_a_broken_pdf_is_refused() -> None:
    assert "Quarterly revenue grew" in extract_text(_pdf("Quarterly revenue grew"), "r.pdf", "pdf")
    with pytest.raises(InvalidRequest, match="not a readable PDF"):
        extract_text(b"%PDF-1.4 garbage", "bad.pdf", "pdf")
