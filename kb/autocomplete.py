"""Suggestions as you type: titles, place names and frequent index words.

The data behind suggestions is built once per index state (generation folder and
Whoosh commit) from what the index already holds: article titles, prefectures and
municipalities, categories and tags, the most frequent terms of the title and body
and the "READING:term" tokens of proper nouns. Each word also gets its katakana reading
from Sudachi, so kana typed by a user finds kanji words (かけ -> 掛川市).

Lookups are prefix searches in sorted lists (bisect) plus a substring scan of the
titles, well under a millisecond on the sample corpus.
"""
from __future__ import annotations

import bisect
import heapq
import re
import threading
import time
import unicodedata
from dataclasses import dataclass, field

from .analysis import analyze, is_kana, to_katakana

DEFAULT_LIMIT = 8
MAX_LIMIT = 20
MAX_TERMS = 5000  # the most frequent index terms kept as suggestions
MAX_INPUT = 100  # characters of the last word looked at
MAX_TITLES = 3  # titles shown among the suggestions at most
TERM_FIELDS = ("title", "body")  # fields whose words are suggested (Sudachi terms)
KIND_LABELS = {"place": "地名", "category": "分類", "tag": "タグ", "name": "固有名詞",
               "term": "語", "title": "記事"}
# Earlier kinds win when the same word comes from several places.
KIND_ORDER = ("place", "category", "tag", "name", "term")
# Curated words (places, the taxonomy, tags) count for more than a word of running text.
KIND_BOOST = {"place": 4, "category": 3, "tag": 2, "name": 2, "term": 1}
_DIGITS_OR_SYMBOLS = re.compile(r"^[\W\d_]+$")
_HIRAGANA_ONLY = re.compile(r"^[\u3041-\u309fー]+$")
_SPACE = re.compile(r"[\s\u3000]+")


def normalize(text: str) -> str:
    """Fold widths and case the way a user's typing is compared with words."""
    return unicodedata.normalize("NFKC", text or "").lower().strip()


def reading_of(text: str) -> str:
    """Return the katakana reading of a word or phrase (Sudachi), or "" when it has none."""
    if is_kana(text):
        return to_katakana(normalize(text))
    morphs = [m for m in analyze(text, "index") if not m.sub]
    return "".join(m.reading for m in morphs if m.reading)


def noun_reading(term: str) -> str | None:
    """Return the reading of an index term that is one noun, else None (not worth suggesting).

    Index terms are normalized forms: verbs and adjectives show as dictionary forms
    (掛かる, 有る) that nobody types into a search box, so only nouns are kept.
    """
    morphs = [m for m in analyze(term, "index") if not m.sub]
    if len(morphs) != 1 or morphs[0].text != term:
        return None
    m = morphs[0]
    if m.pos[0] != "名詞" or m.pos[1] == "数詞" or m.pos[:2] == ("名詞", "助動詞語幹"):
        return None
    return m.reading or ""


@dataclass
class Word:
    """A suggestible word: what is shown, how it is compared, how common it is."""

    text: str
    kind: str
    count: int
    norm: str = ""
    reading: str = ""


@dataclass
class SuggestData:
    """Sorted lookup tables of one index state."""

    words: list[Word] = field(default_factory=list)
    by_norm: list[tuple[str, int]] = field(default_factory=list)
    by_reading: list[tuple[str, int]] = field(default_factory=list)
    titles: list[tuple[str, str, str]] = field(default_factory=list)  # (norm, title, id)
    built_seconds: float = 0.0


def _decode(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _good_term(term: str) -> bool:
    if len(term) < 2 or _DIGITS_OR_SYMBOLS.match(term):
        return False
    # short hiragana terms are mostly verb endings and function words (かける, ため)
    return not (_HIRAGANA_ONLY.match(term) and len(term) < 4)


def _doc_frequencies(reader, fieldname: str) -> dict[str, int]:
    """Return {term: number of articles} of a field ({} when the schema has no such field)."""
    out: dict[str, int] = {}
    if fieldname not in reader.schema:
        return out
    # segment by segment: a multi-segment reader merges every term's info, far slower
    for leaf, _offset in reader.leaf_readers():
        for token, info in leaf.iter_field(fieldname):
            term = _decode(token)
            out[term] = out.get(term, 0) + info.doc_frequency()
    return out


def build_data(searcher) -> SuggestData:
    """Collect the suggestion words and titles of an index (one pass over it)."""
    started = time.perf_counter()
    reader = searcher.reader()
    counts: dict[tuple[str, str], int] = {}
    titles: list[tuple[str, str, str]] = []
    for _docnum, stored in reader.iter_docs():
        title = stored.get("title") or ""
        if title:
            titles.append((normalize(title), title, stored.get("id", "")))
        for kind, values in (("place", [stored.get("prefecture"), stored.get("municipality")]),
                             ("category", (stored.get("categories") or "").split(",")),
                             ("tag", (stored.get("tags") or "").split(","))):
            for value in values:
                if value and value.strip():
                    key = (value.strip(), kind)
                    counts[key] = counts.get(key, 0) + 1
    readings: dict[str, str] = {}
    for token, df in _doc_frequencies(reader, "yomi").items():
        reading, _, term = token.partition(":")
        if term:
            counts[(term, "name")] = max(counts.get((term, "name"), 0), df)
            readings[term] = reading
    frequency: dict[str, int] = {}
    for name in TERM_FIELDS:
        for term, df in _doc_frequencies(reader, name).items():
            frequency[term] = max(frequency.get(term, 0), df)
    for term, df in heapq.nlargest(MAX_TERMS, ((t, df) for t, df in frequency.items()
                                                if _good_term(t)), key=lambda kv: kv[1]):
        counts[(term, "term")] = df
    seen: dict[str, Word] = {}
    rank = {k: i for i, k in enumerate(KIND_ORDER)}
    for (text, kind), count in sorted(counts.items(), key=lambda kv: rank[kv[0][1]]):
        norm = normalize(text)
        if not norm:
            continue
        if norm in seen:
            seen[norm].count = max(seen[norm].count, count)
            continue
        if kind == "term":
            reading = noun_reading(text)
            if reading is None:
                continue
        else:
            reading = readings.get(text) or reading_of(text)
        seen[norm] = Word(text, kind, count, norm, reading)
    words = list(seen.values())
    data = SuggestData(words=words, titles=titles)
    data.by_norm = sorted((w.norm, i) for i, w in enumerate(words))
    data.by_reading = sorted((w.reading, i) for i, w in enumerate(words) if w.reading)
    data.built_seconds = time.perf_counter() - started
    return data


def _prefixed(table: list[tuple[str, int]], prefix: str):
    """Yield the word numbers whose key starts with prefix."""
    i = bisect.bisect_left(table, (prefix, -1))
    while i < len(table) and table[i][0].startswith(prefix):
        yield table[i][1]
        i += 1


def split_last_word(text: str) -> tuple[str, str]:
    """Split typed text into (the words before, the word being typed)."""
    text = (text or "").replace("\x00", " ")
    stripped = text.rstrip()
    if stripped != text or not stripped:
        return stripped, ""  # a trailing space: the last word is finished
    parts = _SPACE.split(stripped)
    head = stripped[: len(stripped) - len(parts[-1])]
    return head, parts[-1]


def suggest(data: SuggestData, text: str, limit: int = DEFAULT_LIMIT) -> list[dict]:
    """Return suggestions completing the last word typed; titles link to their article."""
    head, last = split_last_word(text)
    word = normalize(last)[:MAX_INPUT]
    if not word or word[0] in "-\"'「“":
        return []
    limit = max(1, min(limit, MAX_LIMIT))
    matched = set(_prefixed(data.by_norm, word))
    if is_kana(word):
        matched.update(_prefixed(data.by_reading, to_katakana(word)))

    def rank(i: int) -> tuple:
        w = data.words[i]
        return (w.norm != word, -w.count * KIND_BOOST[w.kind], KIND_ORDER.index(w.kind),
                len(w.text), w.text)

    titles = []
    # a kana or two, or one Latin letter, is in too many titles to mean anything
    if len(word) >= (3 if is_kana(word) else 2) or not (word.isascii() or is_kana(word)):
        starts, contains = [], []
        for norm, title, article_id in data.titles:
            pos = norm.find(word)
            if pos == 0:
                starts.append((title, article_id))
            elif pos > 0:
                contains.append((title, article_id))
            if len(starts) >= MAX_TITLES:
                break
        titles = (starts + contains)[:MAX_TITLES]
    n_words = max(limit - len(titles), limit // 2)
    out = []
    for i in heapq.nsmallest(n_words, matched, key=rank):
        w = data.words[i]
        out.append({"text": f"{head}{w.text}", "label": w.text, "kind": w.kind,
                    "kind_label": KIND_LABELS[w.kind], "reading": w.reading, "count": w.count})
    for title, article_id in titles[: limit - len(out)]:
        out.append({"text": title, "label": title, "kind": "title",
                    "kind_label": KIND_LABELS["title"], "id": article_id})
    return out


# --- one cached table per index state ------------------------------------------------

CACHED_STATES = 4  # a server serves one; tests open a few indexes side by side
_cache: dict[tuple, SuggestData] = {}
_cache_lock = threading.Lock()


def data_for(index) -> SuggestData:
    """Return the suggestion data of an OpenIndex's current state, built on first use."""
    searcher = index.searcher()
    key = (str(index.generation_path), searcher.reader().generation(), searcher.doc_count_all())
    data = _cache.get(key)
    if data is None:
        with _cache_lock:
            data = _cache.get(key)
            if data is None:
                data = build_data(searcher)
                while len(_cache) >= CACHED_STATES:  # older states are not served again
                    _cache.pop(next(iter(_cache)))
                _cache[key] = data
    return data


def warm(index_dir) -> None:
    """Build the suggestion data of an index now (a server does it before forking workers)."""
    from .index import OpenIndex

    try:
        index = OpenIndex(index_dir)
    except Exception:  # the server reports a missing or broken index itself
        return
    try:
        data_for(index)
    finally:
        index.close()
