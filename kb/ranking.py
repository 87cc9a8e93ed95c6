"""How search scores an article: BM25 per field over the index's postings, and the weights.

Whoosh decides nothing here but what its postings say. Each open searcher keeps its
posting lists and field lengths as numpy arrays (read once, then reused by every
query), and a query tree is scored and matched with array operations: all matches
are scored exactly, in a few milliseconds, where Whoosh's matcher trees took tens
and their shortcuts dropped top documents of OR queries with optional parts.

Every number here was measured on JSQuAD paragraph retrieval (bench/relevance_jsquad.py)
and the sample corpus's judged queries; the README's "Ranking" section has the table.
"""
from __future__ import annotations

import math

import numpy as np
from whoosh import query as wq
from whoosh.codec.whoosh3 import W3LeafMatcher
from whoosh.matching.wrappers import FilterMatcher

from .readercache import reader_cache

# "text" is not a field of the index: it is title and body scored as one field (a
# word's frequencies and the lengths added up), which ranks better than scoring the
# two apart and costs no extra postings.
TEXT = "text"
TEXT_FIELDS = ("title", "body")

# (K1, B) per field: a lower K1 saturates a repeated word sooner, and a lower B
# punishes long articles less, than Lucene's defaults.
FIELD_PARAMS: dict[str, tuple[float, float]] = {
    "text": (0.6, 0.5),
    "grams": (0.3, 0.5),
}
DEFAULT_PARAMS = (1.2, 0.75)

TITLE_WEIGHT = 0.5  # a query word in the title counts this much on top of `text`
KEYWORDS_WEIGHT = 1.0  # place names, categories and tags
GRAMS_WEIGHT = 0.4  # the character-bigram score beside the word score
PARTS_WEIGHT = 0.5  # a compound matched through its A units rather than as a whole
VIA_WEIGHT = {"word": 1.0, "year": 1.0, "reading": 1.0, "synonym": 0.8}

# Question words say what is asked, not what an answer contains.
QUESTION_WORDS = frozenset({
    "何", "なに", "なん", "どこ", "何処", "いつ", "何時", "誰", "だれ", "どなた", "どの", "どれ",
    "どちら", "どっち", "いくら", "幾ら", "いくつ", "幾つ", "どう", "如何", "どのよう", "どんな",
    "なぜ", "何故", "どうして", "どれくらい", "どのくらい", "どれほど",
})
# POS prefix -> query-term weight (the first match wins; everything else weighs 1.0).
POS_WEIGHTS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("動詞",), 0.3),
)

MAX_CACHED_POSTINGS = 6_000_000  # postings kept per commit, for all threads (16 bytes each)
MAX_CACHED_PHRASES = 2_000
MAX_CACHED_KNOWN = 200_000  # terms looked up (most query variants are not in the index)


def term_weight(pos: tuple[str, ...]) -> float:
    """Return how much a query word of this part of speech counts."""
    for prefix, weight in POS_WEIGHTS:
        if pos[: len(prefix)] == prefix:
            return weight
    return 1.0


def _empty() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


def read_postings(reader, fieldname: str, text: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (document numbers, weights) of a term over every segment, deletions left out.

    Whoosh's matcher hands out one posting per method call (about a microsecond
    each); whole posting blocks are decoded as arrays here instead, ten times faster
    on common words. Other matcher types are walked the ordinary way.
    """
    ids_parts, weight_parts = [], []
    for leaf, offset in reader.leaf_readers():
        if (fieldname, text) not in leaf:
            continue
        m = leaf.postings(fieldname, text)
        deleted = None
        if isinstance(m, FilterMatcher) and m._exclude:
            deleted, m = m._ids, m.child
            m.reset()  # the filter has already stepped past leading deleted documents
        if type(m) is W3LeafMatcher and not m._byteids:
            ids, weights = _block_arrays(m)
        else:
            ids_l, weights_l = [], []
            while m.is_active():
                ids_l.append(m.id())
                weights_l.append(m.weight())
                m.next()
            ids, weights = np.array(ids_l, dtype=np.int64), np.array(weights_l, dtype=np.float64)
        if deleted:
            keep = ~np.isin(ids, np.fromiter(deleted, dtype=np.int64, count=len(deleted)))
            ids, weights = ids[keep], weights[keep]
        ids_parts.append(ids + offset)
        weight_parts.append(weights)
    if not ids_parts:
        return _empty(), np.zeros(0)
    # 8-byte numbers, although 4 would hold them: scoring mixes them with float64
    # arrays, and the conversions made searches a fifth slower
    return np.concatenate(ids_parts), np.concatenate(weight_parts)


def _block_arrays(m: W3LeafMatcher) -> tuple[np.ndarray, np.ndarray]:
    """Decode every block of a W3 posting list (pinned whoosh-reloaded 2.7.5's layout).

    A block stores its document numbers as differences from the previous one (the
    first from 0), and its weights as None (all 1.0), one float (all equal) or an array.
    """
    ids_parts, weight_parts = [], []
    while True:
        if m._data is None:
            m._read_data()
        count = m._blocklength
        ids_parts.append(np.cumsum(np.asarray(m._data[0], dtype=np.int64)))
        weights = m._data[1]
        if weights is None:
            weight_parts.append(np.ones(count))
        elif isinstance(weights, float):
            weight_parts.append(np.full(count, weights))
        else:
            weight_parts.append(np.asarray(weights, dtype=np.float64))
        if m._lastblock:
            break
        m._goto(m._nextoffset)
    return np.concatenate(ids_parts), np.concatenate(weight_parts)


class Ranker:
    """BM25 scores and match sets of query trees, over one searcher's postings."""

    def __init__(self, searcher):
        self.searcher = searcher
        self.reader = searcher.reader()
        self.size = self.reader.doc_count_all()
        self.doc_count = max(searcher.doc_count(), 1)
        # shared with every other thread's Ranker over the same commit
        self._cache = reader_cache(searcher)
        self._lock = self._cache.lock

    # --- what the index holds, cached ---------------------------------------------

    def known(self, fieldname: str, text: str) -> bool:
        """True when the index holds the term in the field."""
        key = (fieldname, text)
        found = self._cache.known.get(key)
        if found is None:
            if fieldname == TEXT:
                found = any((f, text) in self.reader for f in TEXT_FIELDS)
            else:
                found = key in self.reader
            if len(self._cache.known) >= MAX_CACHED_KNOWN:
                self._cache.known.clear()
            self._cache.known[key] = found
        return found

    def postings(self, fieldname: str, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Return (document numbers, term frequencies) of a term; empty when absent."""
        key = (fieldname, text)
        cache = self._cache
        with self._lock:
            found = cache.postings.get(key)
            if found is not None:
                cache.postings.move_to_end(key)
                return found
        if fieldname == TEXT:
            found = self._joined(text)
        elif (fieldname, text) in self.reader:
            found = read_postings(self.reader, fieldname, text)
        else:
            found = (_empty(), np.zeros(0))
        with self._lock:
            if key not in cache.postings:
                cache.postings[key] = found
                cache.postings_size += len(found[0]) + 1
            while cache.postings_size > MAX_CACHED_POSTINGS and len(cache.postings) > 1:
                _, (old, _w) = cache.postings.popitem(last=False)
                cache.postings_size -= len(old) + 1
        return found

    def _joined(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The postings of title and body as one field: frequencies added per document."""
        parts = [self.postings(f, text) for f in TEXT_FIELDS]
        ids = np.concatenate([p[0] for p in parts])
        if not len(ids):
            return ids, np.zeros(0)
        unique, where = np.unique(ids, return_inverse=True)
        return unique, np.bincount(where, weights=np.concatenate([p[1] for p in parts]))

    def lengths(self, fieldname: str) -> np.ndarray:
        """Return every document's length in a field (as Whoosh stores it)."""
        found = self._cache.tables.get(("length", fieldname))
        if found is None:
            if fieldname == TEXT:
                found = sum(self.lengths(f) for f in TEXT_FIELDS)
            else:
                length = self.reader.doc_field_length
                found = np.array([length(d, fieldname, 0) for d in range(self.size)],
                                 dtype=np.float64)
            self._cache.tables[("length", fieldname)] = found
        return found

    def column(self, fieldname: str) -> list:
        """Return every document's value of a sortable field (None where it has none)."""
        found = self._cache.tables.get(("column", fieldname))
        if found is None:
            if fieldname in self.reader.schema and self.reader.has_column(fieldname):
                found = list(self.reader.column_reader(fieldname, translate=True))
            else:
                found = [None] * self.size
            self._cache.tables[("column", fieldname)] = found
        return found

    def idf(self, fieldname: str, text: str) -> float:
        """Lucene's idf (Whoosh's own, log(N/(df+1))+1, over-weights common words)."""
        n = len(self.postings(fieldname, text)[0])
        return math.log(1 + (self.doc_count - n + 0.5) / (n + 0.5))

    def _phrase_docs(self, q: wq.Phrase) -> np.ndarray:
        with self._lock:
            found = self._cache.phrases.get(q)
        if found is None:
            if q.fieldname == TEXT:  # a phrase lies inside the title or inside the body
                found = np.unique(np.concatenate([
                    self._phrase_docs(wq.Phrase(f, list(q.words))) for f in TEXT_FIELDS]))
            else:
                found = np.array(sorted(self.searcher.docs_for_query(q)), dtype=np.int64)
            with self._lock:
                self._cache.phrases[q] = found
                if len(self._cache.phrases) > MAX_CACHED_PHRASES:
                    self._cache.phrases.popitem(last=False)
        return found

    # --- matching -----------------------------------------------------------------

    def docs(self, q: wq.Query) -> np.ndarray:
        """Return the sorted document numbers a query matches."""
        if q is wq.NullQuery:
            return _empty()
        if isinstance(q, wq.Term):
            return self.postings(q.fieldname, q.text)[0]
        if isinstance(q, wq.Phrase):
            if any(not len(self.postings(q.fieldname, w)[0]) for w in q.words):
                return _empty()
            return self._phrase_docs(q)
        if isinstance(q, wq.And):
            out = None
            for sub in q.subqueries:
                found = self.docs(sub)
                out = found if out is None else np.intersect1d(out, found, assume_unique=True)
                if not len(out):
                    return _empty()
            return out if out is not None else _empty()
        if isinstance(q, (wq.Or, wq.DisjunctionMax)):
            parts = [self.docs(sub) for sub in q.subqueries]
            parts = [p for p in parts if len(p)]
            if len(parts) <= 1:
                return parts[0] if parts else _empty()
            hit = np.zeros(self.size, dtype=bool)  # a mask beats sorting the union
            for p in parts:
                hit[p] = True
            return np.flatnonzero(hit)
        # anything else (ranges, Every): Whoosh knows
        return np.array(sorted(self.searcher.docs_for_query(q)), dtype=np.int64)

    # --- scoring ------------------------------------------------------------------

    def _term(self, fieldname: str, text: str, boost: float, out: np.ndarray) -> None:
        ids, tf = self.postings(fieldname, text)
        if not len(ids):
            return
        k1, b = FIELD_PARAMS.get(fieldname, DEFAULT_PARAMS)
        lengths = self.lengths(fieldname)
        avg = float(lengths.sum()) / self.doc_count or 1.0
        norm = k1 * (1 - b + b * lengths[ids] / avg)
        out[ids] += boost * self.idf(fieldname, text) * tf * (k1 + 1) / (tf + norm)

    def score(self, q: wq.Query, out: np.ndarray | None = None) -> np.ndarray:
        """Add the query's score of every document to `out` (a new array by default).

        Or and And add their parts' scores, DisjunctionMax keeps the best part, and a
        phrase scores as its words where the phrase occurs (all as Whoosh would).
        """
        if out is None:
            out = np.zeros(self.size)
        if q is wq.NullQuery:
            return out
        if isinstance(q, wq.Term):
            self._term(q.fieldname, q.text, q.boost, out)
        elif isinstance(q, wq.Phrase):
            docs = self.docs(q)
            if len(docs):
                words = np.zeros(self.size)
                for w in q.words:
                    self._term(q.fieldname, w, q.boost, words)
                out[docs] += words[docs]
        elif isinstance(q, (wq.Or, wq.And)):
            if q.boost == 1.0:
                for sub in q.subqueries:
                    self.score(sub, out)
            else:
                inner = np.zeros(self.size)
                for sub in q.subqueries:
                    self.score(sub, inner)
                out += q.boost * inner
        elif isinstance(q, wq.DisjunctionMax):
            best = np.zeros(self.size)
            for sub in q.subqueries:
                np.maximum(best, self.score(sub), out=best)
            out += q.boost * best
        elif isinstance(q, wq.Every):
            out += 1.0
        else:
            out[self.docs(q)] += q.boost
        return out


def ranker(index) -> Ranker:
    """Return the Ranker of this thread's searcher of an open index (made once per searcher).

    It lives as long as the index's searcher, so its caches (and those search hangs
    beside it: facets, vocabulary) are dropped when a new generation is opened.
    """
    searcher = index.searcher()
    found = getattr(searcher, "_kb_ranker", None)
    if found is None:
        found = searcher._kb_ranker = Ranker(searcher)
    return found
