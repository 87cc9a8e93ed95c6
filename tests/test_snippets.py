"""kb.snippets: short extracts around the matches, marked up safely."""
from __future__ import annotations

import html
import re

from kb.snippets import SNIPPET_CHARS, make_snippet, mark_html, match_spans, segments


def test_match_spans_find_normalised_words():
    text = "白井市のＢＰＯと、札幌市の引越し窓口。"
    spans = match_spans(text, {"bpo", "引越"})
    assert [text[a:b] for a, b in spans] == ["ＢＰＯ", "引越し"]


def test_match_spans_merge_a_unit_and_c_unit_overlaps():
    text = "指定管理者に任せる"
    spans = match_spans(text, {"管理者", "管理", "者"})
    assert [text[a:b] for a, b in spans] == ["管理者"]


def test_segments_cover_the_text():
    text = "abcdef"
    assert segments(text, [(1, 2), (4, 6)]) == [("a", False), ("b", True), ("cd", False),
                                                  ("ef", True)]
    assert segments(text, []) == [("abcdef", False)]
    assert "".join(p for p, _ in segments(text, [(0, 3), (2, 5)])) == text


def test_mark_html_escapes_everything_but_mark():
    text = "<b>窓口</b> & </mark>"
    out = mark_html(text, [(3, 5)])
    assert out == "&lt;b&gt;<mark>窓口</mark>&lt;/b&gt; &amp; &lt;/mark&gt;"


def test_snippet_of_a_long_text_starts_at_the_matching_sentence():
    text = "前置きの文です。" * 60 + "ここで掛川城の指定管理料に触れる。" + "後書きの文です。" * 60
    snippet = make_snippet(text, {"掛川", "城"})  # adjacent matches merge into one mark
    assert "掛川城" in snippet["text"]
    assert snippet["text"].startswith("…") and snippet["text"].endswith("…")
    assert len(snippet["text"]) <= SNIPPET_CHARS + 2
    (span,) = snippet["spans"]
    assert snippet["text"][span[0]:span[1]] == "掛川城"
    assert "<mark>掛川城</mark>" in snippet["html"]


def test_snippet_of_one_long_sentence_without_breaks():
    text = "あ" * 500 + "窓口" + "い" * 500
    snippet = make_snippet(text, {"窓口"})
    assert "窓口" in snippet["text"] and len(snippet["text"]) <= SNIPPET_CHARS + 2


def test_snippet_without_terms_is_the_start_of_the_text():
    text = "最初の文。二つ目の文。"
    assert make_snippet(text, set()) == {"text": text, "html": text, "spans": []}
    assert make_snippet("", {"窓口"}) == {"text": "", "html": "", "spans": []}


def test_snippet_flattens_markdown_layout():
    text = "## 見出し\n窓口の委託について。\n- 二つ目の項目\n・三つ目"
    snippet = make_snippet(text, {"窓口"})
    assert snippet["text"] == "…窓口の委託について。 二つ目の項目 三つ目"
    assert snippet["html"] == "…<mark>窓口</mark>の委託について。 二つ目の項目 三つ目"
    assert snippet["spans"] == [(1, 3)]


def test_snippet_html_is_the_escaped_text_plus_marks():
    text = "<script>alert(1)</script>窓口の</mark>委託&amp;。"
    snippet = make_snippet(text, {"窓口", "委託", "script"})
    bare = re.sub(r"</?mark>", "", snippet["html"])
    assert "<" not in bare and html.unescape(bare) == snippet["text"]
