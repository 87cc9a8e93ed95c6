"""もしかして: spelling suggestions from the index's own vocabulary.

A word that finds nothing (or next to nothing) is compared with what the articles
actually contain: every string one edit away (a character replaced, dropped, added or
two swapped) whose character bigrams all occur in the index is a candidate, and the
candidate that the most articles contain wins. Words typed in kana are also compared
with the readings of the index's proper nouns (かけかわ -> 掛川).
"""
from __future__ import annotations

import unicodedata
from collections import defaultdict

import numpy as np
from whoosh import query as wq

from .analysis import analyze, char_grams, is_kana, to_katakana
from .readercache import reader_cache
from .readings import all_readings

MAX_CANDIDATES = 50  # verified against the index at most, per word
MIN_GAIN = 3  # a suggestion must find this many times the articles the word itself finds
MIN_CHARS = 3  # one edit in a shorter word changes too much of it
MAX_CHARS = 12  # a longer chunk is a phrase or a sentence, not one misspelt word


def _decode(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


class _GramFrequencies(dict):
    """bigram -> articles holding it, looked up in the index the first time it is asked.

    Reading every bigram's frequency up front took seconds on a large index; the
    terms alone come straight from the lexicon.
    """

    def __init__(self, reader, terms: set[str]):
        super().__init__()
        self.reader, self.terms = reader, terms

    def __contains__(self, gram) -> bool:
        return gram in self.terms

    def __missing__(self, gram: str) -> int:
        try:
            value = self.reader.doc_frequency("grams", gram) if gram in self.terms else 0
        except Exception:  # the reader was closed by a newer commit: no longer needed
            value = 0
        self[gram] = value
        return value


def gram_vocabulary(searcher) -> tuple[dict[str, int], dict[str, set[str]], dict[str, set[str]]]:
    """Return (bigram -> articles holding it, next characters of each, previous ones), cached.

    Cached for the searcher's commit (kb.readercache), so every thread shares one copy.
    """
    cache = reader_cache(searcher)
    cached = cache.tables.get("gram vocabulary")
    if cached is not None:
        return cached
    terms: set[str] = set()
    after: dict[str, set[str]] = defaultdict(set)
    before: dict[str, set[str]] = defaultdict(set)
    if "grams" in searcher.schema:
        for token in searcher.reader().lexicon("grams"):
            g = _decode(token)
            if len(g) == 2:
                terms.add(g)
                after[g[0]].add(g[1])
                before[g[1]].add(g[0])
    cached = cache.tables["gram vocabulary"] = (_GramFrequencies(searcher.reader(), terms),
                                                 after, before)
    return cached


def one_edit(word: str, grams, after: dict, before: dict) -> set[str]:
    """Strings one edit from word that the index's bigrams allow (word excluded)."""
    n = len(word)
    out: set[str] = set()
    for i in range(n):
        # replace word[i]
        left = word[i - 1] if i > 0 else None
        right = word[i + 1] if i + 1 < n else None
        pool = after.get(left, set()) if left else before.get(right, set()) if right else set()
        for c in pool:
            if c != word[i] and (right is None or c + right in grams):
                out.add(word[:i] + c + word[i + 1:])
        # drop word[i]
        if n > 2:
            out.add(word[:i] + word[i + 1:])
        # swap word[i] and word[i + 1]
        if right is not None and right != word[i]:
            out.add(word[:i] + right + word[i] + word[i + 2:])
    # add a character between two, or at either end
    for i in range(n + 1):
        left = word[i - 1] if i > 0 else None
        right = word[i] if i < n else None
        pool = after.get(left, set()) if left else before.get(right, set())
        for c in pool:
            if right is None or c + right in grams:
                out.add(word[:i] + c + word[i:])
    out.discard(word)
    return {w for w in out if len(w) >= 2 and _known(w, grams)}


def _pairs(text: str) -> list[str]:
    """The bigrams of a candidate as it stands (one_edit builds them already folded)."""
    return [text[i:i + 2] for i in range(len(text) - 1)]


def _known(text: str, grams) -> bool:
    """True when text is one run of word characters whose every bigram is in the index.

    Candidates are made of the folded word and of characters taken from the index's
    bigrams, so no folding is needed; a punctuation character is never in a bigram of
    the index, so a candidate holding one fails here as it should.
    """
    return all(pair in grams for pair in _pairs(text))


def _count(r, text: str, allowed) -> int:
    """How many articles hold every bigram of text."""
    grams = sorted(set(char_grams(text)))
    if not grams:
        return 0
    docs = r.docs(wq.And([wq.Term("grams", g) for g in grams]))
    return len(docs if allowed is None else np.intersect1d(docs, allowed, assume_unique=True))


def _wordlike(r, text: str) -> bool:
    """True when text analyses into index words only, with no particle or symbol between."""
    morphs = analyze(text, "query")
    covered = sum(len(m.surface) for m in morphs)
    return bool(morphs) and covered == len(text) and all(
        len(r.postings("text", m.text)[0]) > 0 for m in morphs)


def correct_word(r, word: str, found: int, allowed=None) -> str | None:
    """Return the best one-edit correction of word that finds more articles, or None.

    `r` is the searcher's Ranker (kb/ranking.py); `allowed`, the documents the
    filters leave (None for all).
    """
    word = unicodedata.normalize("NFKC", word).lower()
    if not MIN_CHARS <= len(word) <= MAX_CHARS:
        return None
    grams, after, before = gram_vocabulary(r.searcher)
    # No candidate is in more articles than its rarest bigram: check the likeliest first
    # and stop once no remaining candidate can win.
    bounded = sorted(((min(grams[g] for g in _pairs(c)), c)
                      for c in one_edit(word, grams, after, before)), reverse=True)
    need = max(found * MIN_GAIN, found + 1)
    best, best_score = None, None
    for bound, cand in bounded[:MAX_CANDIDATES]:
        if bound < need or (best_score and bound < best_score[0]):
            break
        count = _count(r, cand, allowed)
        if count < need or not _wordlike(r, cand):
            continue
        # more articles first; then a single word of the index; then the same length
        score = (count, len(analyze(cand, "query")) == 1, len(cand) == len(word))
        if best_score is None or score > best_score:
            best, best_score = cand, score
    if best is None and is_kana(word):
        best = correct_reading(r.searcher, word)
    return best


def _distance_one(a: str, b: str) -> bool:
    """True when a and b differ by one replaced, dropped, added or swapped character."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def correct_reading(searcher, kana: str) -> str | None:
    """Return the proper noun whose reading is one edit from kana (かけかわ -> 掛川)."""
    reading = to_katakana(kana)
    table = all_readings(searcher)
    best = None
    for other, terms in table.items():
        if len(reading) >= 3 and _distance_one(reading, other):
            for term in terms:
                df = searcher.doc_frequency("yomi", f"{other}:{term}")
                if best is None or df > best[0]:
                    best = (df, term)
    return best[1] if best else None
