from __future__ import annotations

from llmos.tasks import looks_like_html, normalize, prepare, strip_html, truncate


def test_strip_html_keeps_visible_text_and_block_breaks() -> None:
    html = (
        "<html><head><title>t</title><style>p{color:red}</style></head><body>"
        "<h1>News</h1><p>Caf&eacute; &amp; bar<br>opens</p><script>alert(1)</script>"
        "<ul><li>one</li><li>two</li></ul><!-- hidden --></body></html>"
    )
    text = normalize(strip_html(html))
    assert text == "News\n\nCafé & bar\nopens\n\none\ntwo"
    assert "alert" not in text and "color" not in text and "hidden" not in text


def test_normalize_applies_nfkc_and_collapses_whitespace() -> None:
    raw = "  ｆｕｌｌ\u00a0width\tand\u200b ﬁ ligature\r\n\r\n\r\n\r\nnext  para \x07 "
    assert normalize(raw) == "full width and fi ligature\n\nnext para"


def test_looks_like_html() -> None:
    assert looks_like_html("<p>x</p>") and looks_like_html("a <br/> b") and looks_like_html("<!DOCTYPE html>")
    assert not looks_like_html("3 < 4 and 5 > 2") and not looks_like_html("plain text")


def test_truncate_cuts_at_a_word_boundary() -> None:
    text = "alpha beta gamma delta epsilon"
    assert truncate(text, 100) == text
    assert truncate(text, 18) == "alpha beta gamma"
    assert len(truncate("x" * 50, 10)) == 10


def test_prepare_reports_what_it_did() -> None:
    p = prepare("<b>Hello</b>   world " + "word " * 100, max_chars=40)
    assert p.html_stripped and p.truncated and p.chars <= 40 and p.text.startswith("Hello world")
    assert p.original_chars == len("<b>Hello</b>   world " + "word " * 100)
    plain = prepare("a <b>literal</b> tag", input_format="text", max_chars=100)
    assert not plain.html_stripped and plain.text == "a <b>literal</b> tag" and not plain.truncated
    forced = prepare("no tags & no markup", input_format="html", max_chars=100)
    assert forced.html_stripped and forced.text == "no tags & no markup"
