"""How search scores an article: the weighting model, field weights and term weights.

Every number here was measured on JSQuAD paragraph retrieval (bench/relevance_jsquad.py)
and the sample corpus's judged queries; the README's "Ranking" section has the table.
"""
from __future__ import annotations

import math

from whoosh import scoring
from whoosh.searching import Searcher

# (K1, B) per field. `text` is title+body as one field: lower K1 saturates a repeated
# word sooner and lower B punishes long articles less than Lucene's defaults.
FIELD_PARAMS: dict[str, tuple[float, float]] = {
    "text": (0.8, 0.5),
    "grams": (0.5, 0.5),
}
DEFAULT_PARAMS = (1.2, 0.75)

TITLE_WEIGHT = 0.5  # a query word in the title counts this much on top of `text`
KEYWORDS_WEIGHT = 1.0  # place names, categories and tags
GRAMS_WEIGHT = 0.5  # the character-bigram score beside the word score
PARTS_WEIGHT = 0.5  # a compound matched through its A units rather than as a whole
VIA_WEIGHT = {"word": 1.0, "year": 1.0, "reading": 1.0, "synonym": 0.8}

# Question words say what is asked, not what an answer contains.
QUESTION_WORDS = frozenset({
    "何", "なに", "なん", "どこ", "何処", "いつ", "何時", "誰", "だれ", "どなた", "どの", "どれ",
    "どちら", "どっち", "いくら", "幾ら", "いくつ", "幾つ", "どう", "如何", "どのよう", "どんな",
    "なぜ", "何故", "どうして", "どれくらい", "どのくらい", "どれほど", "何故",
})
# POS prefix -> query-term weight (the first match wins; everything else weighs 1.0).
POS_WEIGHTS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("動詞",), 0.3),
)


def term_weight(pos: tuple[str, ...]) -> float:
    """Return how much a query word of this part of speech counts."""
    for prefix, weight in POS_WEIGHTS:
        if pos[: len(prefix)] == prefix:
            return weight
    return 1.0


class KBWeighting(scoring.WeightingModel):
    """BM25 with Lucene's idf and per-field K1/B (Whoosh's own idf over-weights common words)."""

    def __init__(self, params: dict[str, tuple[float, float]] | None = None):
        self.params = dict(FIELD_PARAMS if params is None else params)

    def supports_block_quality(self):
        return True

    def idf(self, searcher, fieldname, text):
        n = searcher.doc_frequency(fieldname, text)
        total = searcher.doc_count()
        return math.log(1 + (total - n + 0.5) / (n + 0.5))

    def scorer(self, searcher, fieldname, text, qf=1):
        if not searcher.schema[fieldname].scorable:
            return scoring.WeightScorer.for_(searcher, fieldname, text)
        k1, b = self.params.get(fieldname, DEFAULT_PARAMS)
        return scoring.BM25FScorer(searcher, fieldname, text, b, k1, qf=qf)


WEIGHTING = KBWeighting()


def ranked_searcher(index) -> Searcher:
    """Return this thread's searcher of the open index, scoring with `WEIGHTING`.

    It shares the index's reader and lives as long as the index's own searcher, so
    idf values and the caches search hangs on it (facets, vocabulary) are kept
    between queries and dropped when a new generation is opened.
    """
    base = index.searcher()
    ranked = getattr(base, "_kb_ranked", None)
    if ranked is None:
        ranked = Searcher(base.reader(), weighting=WEIGHTING, closereader=False,
                          fromindex=getattr(base, "_ix", None))
        base._kb_ranked = ranked
    return ranked
