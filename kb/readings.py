"""Reading search: かけがわ and カケガワ find 掛川.

At build time every proper noun with kanji puts "READING:term" into the index's `yomi`
field (the reading in katakana, from Sudachi). The field's vocabulary is the
reading -> term map, stored with the index and kept current by incremental updates.
At query time a word typed in kana only is looked up there, and the terms it reads as
become alternatives of the word.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from .analysis import Morph, is_kana, to_katakana
from .readercache import reader_cache

FIELD = "yomi"
SEP = ":"
MAX_TERMS = 5  # a reading shared by many names (e.g. a common given name) adds at most this many
_KANJI = re.compile(r"[\u3400-\u9fff\uf900-\ufaff々]")
_KATAKANA = re.compile(r"^[\u30a1-\u30faー]+$")


def reading_tokens(morphs: Iterable[Morph]) -> list[str]:
    """Return the distinct "READING:term" tokens of the proper nouns among morphs."""
    out: dict[str, None] = {}
    for m in morphs:
        if m.pos[:2] != ("名詞", "固有名詞") or not _KANJI.search(m.text):
            continue
        if not m.reading or not _KATAKANA.match(m.reading) or SEP in m.text or "," in m.text:
            continue
        out[f"{m.reading}{SEP}{m.text}"] = None
    return list(out)


def _decode(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def reading_terms(searcher, kana: str) -> list[str]:
    """Return the index terms that read as `kana` (hiragana or katakana), most frequent first."""
    if not kana or not is_kana(kana) or FIELD not in searcher.schema:
        return []
    prefix = to_katakana(kana) + SEP
    found = []
    for token in searcher.reader().expand_prefix(FIELD, prefix):
        token = _decode(token)
        term = token[len(prefix):]
        found.append((-searcher.doc_frequency(FIELD, token), term))
    found.sort()
    return [term for _, term in found[:MAX_TERMS]]


def all_readings(searcher) -> dict[str, list[str]]:
    """Return reading -> terms for the whole index (for suggestions; cached per commit)."""
    cache = reader_cache(searcher)
    cached = cache.tables.get("readings")
    if cached is not None:
        return cached
    table: dict[str, list[str]] = {}
    if FIELD in searcher.schema:
        for token in searcher.reader().lexicon(FIELD):
            reading, _, term = _decode(token).partition(SEP)
            table.setdefault(reading, []).append(term)
    cache.tables["readings"] = table
    return table
