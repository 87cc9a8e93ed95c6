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
import threading
from collections import OrderedDict

import numpy as np
from whoosh import query as wq

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

MAX_CACHED_POSTINGS = 5_000_000  # postings kept per searcher (about 12 bytes each)
MAX_CACHED_PHRASES = 2_000


def term_weight(pos: tuple[str, ...]) -> float:
    """Return how much a query word of this part of speech counts."""
    for prefix, weight in POS_WEIGHTS:
        if pos[: len(prefix)] == prefix:
            return weight
    return 1.0


def _empty() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


class Ranker:
    """BM25 scores and match sets of query trees, over one searcher's postings."""

    def __init__(self, searcher):
        self.searcher = searcher
        self.reader = searcher.reader()
        self.size = self.reader.doc_count_all()
        self.doc_count = max(searcher.doc_count(), 1)
        self._postings: OrderedDict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cached = 0
        self._phrases: OrderedDict[wq.Query, np.ndarray] = OrderedDict()
        self._lengths: dict = {}  # field lengths and columns
        self._lock = threading.Lock()

    # --- what the index holds, cached ---------------------------------------------

    def known(self, fieldname: str, text: str) -> bool:
        """True when the index holds the term in the field."""
        if fieldname == TEXT:
            return any((f, text) in self.reader for f in TEXT_FIELDS)
        return (fieldname, text) in self.reader

    def postings(self, fieldname: str, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Return (document numbers, term frequencies) of a term; empty when absent."""
        key = (fieldname, text)
        with self._lock:
            found = self._postings.get(key)
            if found is not None:
                self._postings.move_to_end(key)
                return found
        if fieldname == TEXT:
            found = self._joined(text)
        else:
            ids: list[int] = []
            weights: list[float] = []
            if (fieldname, text) in self.reader:
                m = self.reader.postings(fieldname, text)
                while m.is_active():
                    ids.append(m.id())
                    weights.append(m.weight())
                    m.next()
            found = (np.array(ids, dtype=np.int64), np.array(weights, dtype=np.float64))
        with self._lock:
            self._postings[key] = found
            self._cached += len(found[0]) + 1
            while self._cached > MAX_CACHED_POSTINGS and len(self._postings) > 1:
                _, (old, _w) = self._postings.popitem(last=False)
                self._cached -= len(old) + 1
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
        found = self._lengths.get(fieldname)
        if found is None:
            if fieldname == TEXT:
                found = sum(self.lengths(f) for f in TEXT_FIELDS)
            else:
                length = self.reader.doc_field_length
                found = np.array([length(d, fieldname, 0) for d in range(self.size)],
                                 dtype=np.float64)
            self._lengths[fieldname] = found
        return found

    def column(self, fieldname: str) -> list:
        """Return every document's value of a sortable field (None where it has none)."""
        found = self._lengths.get(("column", fieldname))
        if found is None:
            if fieldname in self.reader.schema and self.reader.has_column(fieldname):
                found = list(self.reader.column_reader(fieldname, translate=True))
            else:
                found = [None] * self.size
            self._lengths[("column", fieldname)] = found
        return found

    def idf(self, fieldname: str, text: str) -> float:
        """Lucene's idf (Whoosh's own, log(N/(df+1))+1, over-weights common words)."""
        n = len(self.postings(fieldname, text)[0])
        return math.log(1 + (self.doc_count - n + 0.5) / (n + 0.5))

    def _phrase_docs(self, q: wq.Phrase) -> np.ndarray:
        with self._lock:
            found = self._phrases.get(q)
        if found is None:
            if q.fieldname == TEXT:  # a phrase lies inside the title or inside the body
                found = np.unique(np.concatenate([
                    self._phrase_docs(wq.Phrase(f, list(q.words))) for f in TEXT_FIELDS]))
            else:
                found = np.array(sorted(self.searcher.docs_for_query(q)), dtype=np.int64)
            with self._lock:
                self._phrases[q] = found
                if len(self._phrases) > MAX_CACHED_PHRASES:
                    self._phrases.popitem(last=False)
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
            return np.unique(np.concatenate(parts)) if parts else _empty()
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
