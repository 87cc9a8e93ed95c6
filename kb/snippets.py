"""Snippets: the sentences of an article that best show why it matched, marked up safely."""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from html import escape

from .analysis import split_sentences, word_spans

SNIPPET_CHARS = 160


@lru_cache(maxsize=2048)
def _words(text: str) -> tuple[tuple[int, int, str], ...]:
    """(start, end, term) of every word of a text; cached, as the same articles keep coming up."""
    return tuple(word_spans(text))


def match_spans(text: str, terms: set[str], literals: Iterable[str] = ()) -> list[tuple[int, int]]:
    """Return merged (start, end) spans of the words in text whose term is in terms.

    `literals` are strings marked wherever they occur as typed (case aside), for
    matches that are not words (a search by characters).
    """
    spans = [(start, end) for start, end, term in _words(text) if term in terms] if terms else []
    folded = text.lower()
    for literal in literals:
        literal = literal.lower()
        start = folded.find(literal) if literal else -1
        while start >= 0:
            spans.append((start, start + len(literal)))
            start = folded.find(literal, start + len(literal))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def segments(text: str, spans: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    """Cut text into (piece, is_match) segments along sorted, non-overlapping spans."""
    out, pos = [], 0
    for start, end in spans:
        if end <= pos or start >= len(text):
            continue
        start, end = max(start, pos), min(end, len(text))
        if start > pos:
            out.append((text[pos:start], False))
        out.append((text[start:end], True))
        pos = end
    if pos < len(text):
        out.append((text[pos:], False))
    return out


def mark_html(text: str, spans: list[tuple[int, int]]) -> str:
    """Escape text and wrap the spans in <mark> (markup in text can never survive)."""
    return "".join(f"<mark>{escape(p)}</mark>" if hit else escape(p)
                   for p, hit in segments(text, spans))


# Line breaks and Markdown heading/bullet marks read badly inside a one-line extract.
_LAYOUT = re.compile(r"\s*\n[\s#・*-]*")


def _window(spans: list[tuple[int, int]], sentences: list[tuple[int, int]],
            length: int) -> tuple[int, int]:
    """Pick the stretch of sentences holding the most distinct matches."""
    best, best_score = (0, 0), -1.0
    for i, (s_start, s_end) in enumerate(sentences):
        inside = [sp for sp in spans if s_start <= sp[0] < s_end]
        score = len(inside) + (0.5 if inside else 0)
        if score > best_score:
            best, best_score = (i, i), score
    first, last = best
    start, end = sentences[first][0], sentences[last][1]
    # grow with following sentences while there is room
    while last + 1 < len(sentences) and sentences[last + 1][1] - start <= length:
        last += 1
        end = sentences[last][1]
    return start, end


# Analysing a whole article for every hit was most of a search's time; the
# sentence that mentions most of the keys is found by plain string search first,
# and only the snippet's worth of text from it on goes through Sudachi.
FULL_ANALYSIS_CHARS = 2 * SNIPPET_CHARS
FALLBACK_CHARS = 3000


def _likely_region(text: str, sentences: list[tuple[int, int]], keys: list[str]
                   ) -> tuple[int, int]:
    """The sentences from the one that mentions most of the keys, a snippet long."""
    best, best_score = -1, 0
    for i, (start, end) in enumerate(sentences):
        folded = unicodedata.normalize("NFKC", text[start:end]).lower()
        score = sum(1 for k in keys if k in folded)
        if score > best_score:
            best, best_score = i, score
    if best < 0:
        return 0, min(len(text), FALLBACK_CHARS)
    start = sentences[best][0]
    last = best
    while last + 1 < len(sentences) and sentences[last + 1][0] < start + SNIPPET_CHARS:
        last += 1
    return start, sentences[last][1]


def _spans_near_matches(text: str, sentences: list[tuple[int, int]], terms: set[str],
                        literals: Iterable[str]) -> list[tuple[int, int]]:
    if len(text) <= FULL_ANALYSIS_CHARS:
        return match_spans(text, terms, literals)
    literals = list(literals)
    keys = [k.lower() for k in (*terms, *literals) if k]
    start, end = _likely_region(text, sentences, keys)
    return [(a + start, b + start) for a, b in match_spans(text[start:end], terms, literals)]


def make_snippet(text: str, terms: set[str], length: int = SNIPPET_CHARS,
                 literals: Iterable[str] = ()) -> dict:
    """Return {"text", "html", "spans"}: a short extract around the matches."""
    if not text:
        return {"text": "", "html": "", "spans": []}
    sentences = split_sentences(text) or [(0, len(text))]
    spans = (_spans_near_matches(text, sentences, terms, literals)
             if terms or literals else [])
    start, end = _window(spans, sentences, length)
    if end - start > length:
        # one long sentence: centre on its first match
        inside = [sp for sp in spans if start <= sp[0] < end]
        centre = inside[0][0] if inside else start
        start = max(start, min(centre - length // 3, end - length))
        end = min(end, start + length)
    piece = text[start:end]
    local = [(max(a, start) - start, min(b, end) - start) for a, b in spans if a < end and b > start]
    parts = [("…", False)] if start > 0 else []
    parts += [(p if hit else _LAYOUT.sub(" ", p), hit) for p, hit in segments(piece, local)]
    if end < len(text.rstrip()):
        parts.append(("…", False))
    plain, html, marks, pos = [], [], [], 0
    for p, hit in parts:
        plain.append(p)
        html.append(f"<mark>{escape(p)}</mark>" if hit else escape(p))
        if hit:
            marks.append((pos, pos + len(p)))
        pos += len(p)
    return {"text": "".join(plain), "html": "".join(html), "spans": marks}
