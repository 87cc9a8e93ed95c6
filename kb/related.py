"""Related articles: a TF-IDF model over the index's own terms, with the reasons.

The model is fitted when the index is built, from the morphs the build already
computed (`features` runs in the tokenising workers, `after_write` fits and saves),
and lives in the generation folder beside the Whoosh files:

    related.json   model version, settings, article ids and titles, vocabulary
    related.npz    TF-IDF rows, the LSA fold-in, precomputed neighbours (no pickles)

score(a, b) = ALPHA * cosine of the TF-IDF vectors + (1 - ALPHA) * cosine in an LSA
space (TruncatedSVD), so articles about the same subject meet even when they word it
differently. The reasons shown for a pair are the shared terms that contribute most
to the TF-IDF cosine (each term's product of the two weights). Pairs whose TF-IDF
cosine reaches NEAR_DUPLICATE are reported as duplicates, never as related.

Incremental writes (kb.store) do not refit: `after_update` folds each added or changed
article into the fitted model (same vocabulary, idf and LSA fold as `for_text` uses) and
records it, and every removed id, in a small overlay beside the model:

    related-overlay.npz   TF-IDF rows and LSA rows of the articles written since the
                          build, their titles, the removed ids (optional: a missing or
                          broken overlay means "serve the model of the build")

Neighbours involving overlay articles are scored when asked; the vocabulary and idf stay
frozen until the next full build refits the model.
"""
from __future__ import annotations

import copy
import io
import json
import logging
import os
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, NamedTuple, Sequence

import numpy as np
import scipy.sparse as sp

from .analysis import ANALYSIS_VERSION, Morph, analyze
from .errors import ArticleNotFound, BadRequest, IndexIncompatible, TooLarge

MODEL_VERSION = 1
INFO_FILE = "related.json"
ARRAYS_FILE = "related.npz"
OVERLAY_FILE = "related-overlay.npz"
OVERLAY_VERSION = 1
log = logging.getLogger(__name__)

TOP_K = 20  # neighbours stored per article
MAX_LIMIT = TOP_K
DEFAULT_LIMIT = 10
REASON_TERMS = 5  # reasons kept per neighbour
NEAR_DUPLICATE = 0.95  # TF-IDF cosine from which two texts count as the same text
MAX_DUPLICATES = 20
MIN_SCORE = 0.05  # below this a "neighbour" shares too little to be worth showing
MAX_TEXT_CHARS = 20_000  # free text longer than this is refused (413)
MAX_DF_MIN_ARTICLES = 20  # max_df only makes sense once there are enough articles
_BLOCK = 512  # rows scored at once while precomputing neighbours
# Precomputing every article's neighbours compares all pairs: 4 s for 5,000 articles,
# 43 s for 20,000, a quarter of an hour for 100,000. Above this many articles the
# build stays linear and an article's neighbours are scored when asked (tens of ms).
PRECOMPUTE_MAX_ARTICLES = 20_000


@dataclass(frozen=True)
class Settings:
    """How articles become vectors; stored with the model."""

    title_weight: int = 2  # a title term counts as this many body occurrences
    sub_units: bool = False  # also use the A sub-units of compounds
    pos: str = "content"  # "content" (nouns, verbs, adjectives), "nouns" or "all" kept morphs
    sublinear_tf: bool = True
    min_df: int = 1
    max_df: float = 0.5
    lsa_dims: int = 100
    lsa_min_articles: int = 200  # below this LSA would be (nearly) the identity: skip it
    alpha: float = 0.5  # weight of the TF-IDF cosine; the rest is the LSA cosine


DEFAULT_SETTINGS = Settings()


class ArticleTerms(NamedTuple):
    """An article's feature terms and, for display, the spelling each term had."""

    title: tuple[str, ...]
    body: tuple[str, ...]
    display: dict[str, str]


# --- terms ------------------------------------------------------------------------------

_CONJUGATING = ("動詞", "形容詞")


def is_content(pos: tuple[str, ...]) -> bool:
    """True for a content word: a noun (not a number), a verb, an adjective."""
    if pos[0] == "名詞":
        return pos[1] not in ("数詞", "助動詞語幹")
    if pos[0] in _CONJUGATING:
        return pos[1] == "一般"  # not する, いる, ある, なる ... (非自立可能)
    if pos[0] == "形状詞":
        return pos[1] in ("一般", "タリ")
    return False


def _keep(m: Morph, settings: Settings) -> bool:
    if m.sub and not settings.sub_units:
        return False
    if settings.pos == "nouns":
        return m.pos[0] == "名詞" and is_content(m.pos)
    return settings.pos == "all" or is_content(m.pos)


def _display_form(m: Morph) -> str:
    # Verbs and adjectives read best in their dictionary form (待ち -> 待つ), other words
    # as written; but not when that form is a spelling the text never used (まとめ, not 纏める).
    if m.pos[0] in _CONJUGATING and m.surface[:1] == m.text[:1]:
        return m.text
    return m.surface


def extract(title_morphs: Sequence[Morph], body_morphs: Sequence[Morph],
            settings: Settings = DEFAULT_SETTINGS) -> ArticleTerms:
    """Select the feature terms of an article from its analysed title and body."""
    shown: dict[str, Counter] = {}
    kept = []
    for morphs in (title_morphs, body_morphs):
        terms = []
        for m in morphs:
            if _keep(m, settings):
                terms.append(m.text)
                shown.setdefault(m.text, Counter())[_display_form(m)] += 1
        kept.append(tuple(terms))
    display = {t: c.most_common(1)[0][0] for t, c in shown.items()}
    return ArticleTerms(kept[0], kept[1], display)


def features(title_morphs: list[Morph], body_morphs: list[Morph]) -> ArticleTerms:
    """The `features` hook of kb.index.build: runs in the workers, returns little."""
    return extract(title_morphs, body_morphs, DEFAULT_SETTINGS)


def _as_terms(item, settings: Settings) -> ArticleTerms:
    if isinstance(item, ArticleTerms):
        return item
    title_morphs, body_morphs = item  # a build without `features` hands over morphs
    return extract(title_morphs, body_morphs, settings)


def _doc_terms(doc: ArticleTerms, settings: Settings) -> list[str]:
    return list(doc.title) * settings.title_weight + list(doc.body)


def _as_is(terms):
    return terms


# --- fitting ------------------------------------------------------------------------------


def fit(ids: Sequence[str], titles: Sequence[str], docs: Sequence[ArticleTerms],
        settings: Settings = DEFAULT_SETTINGS) -> "RelatedModel":
    """Fit TF-IDF (and LSA when the corpus is large enough) and precompute neighbours."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    n = len(ids)
    term_lists = [_doc_terms(d, settings) for d in docs]
    max_df = settings.max_df if n >= MAX_DF_MIN_ARTICLES else 1.0
    vocab: list[str] = []
    idf = np.zeros(0, np.float32)
    matrix = sp.csr_matrix((n, 0), dtype=np.float32)
    if any(term_lists):
        for min_df, top_df in ((settings.min_df, max_df), (1, 1.0)):
            vectorizer = TfidfVectorizer(analyzer=_as_is, sublinear_tf=settings.sublinear_tf,
                                         min_df=min_df, max_df=top_df, dtype=np.float32)
            try:
                matrix = vectorizer.fit_transform(term_lists).tocsr()
            except ValueError:
                continue  # every term pruned (a tiny or uniform corpus): relax the limits
            vocab = vectorizer.get_feature_names_out().tolist()
            idf = vectorizer.idf_.astype(np.float32)
            break
    display = _corpus_display(docs, vocab)
    return from_matrix(ids, titles, matrix, vocab, idf, display, settings)


def _corpus_display(docs: Sequence[ArticleTerms], vocab: Sequence[str]) -> list[str]:
    """Per term, the spelling most articles use (ties: the first seen)."""
    votes: Counter = Counter()
    for d in docs:
        votes.update(d.display.items())
    best: dict[str, tuple[int, str]] = {}
    for (term, shown), count in votes.items():
        if term not in best or count > best[term][0]:
            best[term] = (count, shown)
    return [best[t][1] if t in best else t for t in vocab]


def from_matrix(ids: Sequence[str], titles: Sequence[str], matrix: sp.csr_matrix,
                vocab: Sequence[str], idf: np.ndarray, display: Sequence[str],
                settings: Settings = DEFAULT_SETTINGS) -> "RelatedModel":
    """Assemble a model from L2-normalised document rows: LSA, neighbours, reasons."""
    from threadpoolctl import threadpool_limits

    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    matrix.sort_indices()
    # One BLAS thread: the build already keeps the cores busy, and OpenBLAS threads
    # fighting over a busy machine ran the SVD four times slower than one thread.
    with threadpool_limits(limits=1, user_api="blas"):
        fold, latent = _lsa(matrix, settings)
        arrays = {
            "data": matrix.data, "indices": matrix.indices.astype(np.int32),
            "indptr": matrix.indptr.astype(np.int64), "idf": np.asarray(idf, np.float32),
            "fold": fold, "latent": latent,
        }
        precomputed = matrix.shape[0] <= PRECOMPUTE_MAX_ARTICLES
        arrays.update(_neighbours(matrix, latent, settings.alpha) if precomputed
                      else _no_neighbours(matrix.shape[0]))
    info = {"model_version": MODEL_VERSION, "analysis_version": ANALYSIS_VERSION,
            "settings": asdict(settings), "ids": list(ids), "titles": list(titles),
            "vocab": list(vocab), "display": list(display), "precomputed": precomputed}
    return RelatedModel(info, arrays)


def _lsa(matrix: sp.csr_matrix, settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """Return (fold, latent): latent rows = normalise(X X^T fold), fold = U S^-1.

    Folding a text in through the documents (x X^T U S^-1 equals x V) keeps the
    model's size proportional to the articles instead of the vocabulary.
    """
    n, v = matrix.shape
    dims = min(settings.lsa_dims, n - 1, v - 1)
    if n < settings.lsa_min_articles or dims < 2:
        empty = np.zeros((n, 0), np.float32)
        return empty, empty
    from sklearn.decomposition import TruncatedSVD

    svd = TruncatedSVD(dims, algorithm="randomized", n_iter=5, random_state=0)
    # A term of one article co-occurs with nothing: leave it out of the SVD (faster),
    # while the fold-in below still counts it.
    shared = np.bincount(matrix.indices, minlength=v) >= 2
    us = svd.fit_transform(matrix[:, shared] if shared.sum() > dims else matrix)
    sigma = svd.singular_values_
    keep = sigma > 1e-6
    fold = (us[:, keep] / (sigma[keep] ** 2)).astype(np.float32)
    latent = _normalise(np.asarray(matrix @ (matrix.T @ fold), dtype=np.float32))
    return fold, latent


def _normalise(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)


def _neighbours(matrix: sp.csr_matrix, latent: np.ndarray, alpha: float) -> dict:
    """Precompute every article's top neighbours, their reasons and its duplicates.

    The rows are cut into one range per core, scored in forked processes that share
    the matrices (the all-pairs step is most of the model's fitting time).
    """
    n = matrix.shape[0]
    global _shared_scoring
    _shared_scoring = (matrix, matrix.T.tocsr(), latent, alpha)
    try:
        procs = min(os.cpu_count() or 1, 4) if n >= PARALLEL_MIN_ARTICLES else 1
        step = -(-n // procs) if n else 1
        ranges = [(a, min(a + step, n)) for a in range(0, n, step)]
        if len(ranges) > 1:
            import multiprocessing as mp

            with mp.get_context("fork").Pool(len(ranges)) as pool:
                parts = pool.map(_score_rows, ranges, chunksize=1)
        else:
            parts = [_score_rows(r) for r in ranges]
    finally:
        _shared_scoring = None
    nb_idx = np.full((n, TOP_K), -1, np.int32)
    nb_score = np.zeros((n, TOP_K), np.float32)
    dup_counts = np.zeros(n, np.int64)
    for (start, stop), (idx, score, counts, _, _) in zip(ranges, parts):
        nb_idx[start:stop], nb_score[start:stop], dup_counts[start:stop] = idx, score, counts
    dup_ptr = np.concatenate([[0], np.cumsum(dup_counts)]).astype(np.int64)
    return {"nb_idx": nb_idx, "nb_score": nb_score, "nb_terms": _pair_reasons(matrix, nb_idx),
            "dup_ptr": dup_ptr, "dup_idx": _concat([p[3] for p in parts], np.int32),
            "dup_score": _concat([p[4] for p in parts], np.float32)}


PARALLEL_MIN_ARTICLES = 2000  # below this, starting processes costs more than it saves
_shared_scoring = None  # (matrix, transposed, latent, alpha), set before forking


def _score_rows(bounds: tuple[int, int]) -> tuple:
    """Neighbours and duplicates of rows [start, stop): (idx, score, dup counts, dup idx, dup score)."""
    from threadpoolctl import threadpool_limits

    matrix, transposed, latent, alpha = _shared_scoring
    first, last = bounds
    n = matrix.shape[0]
    k = min(TOP_K, max(n - 1, 0))
    nb_idx = np.full((last - first, TOP_K), -1, np.int32)
    nb_score = np.zeros((last - first, TOP_K), np.float32)
    dup_counts = np.zeros(last - first, np.int64)
    dup_idx: list[np.ndarray] = []
    dup_score: list[np.ndarray] = []
    with threadpool_limits(limits=1, user_api="blas"):
        for start in range(first, last, _BLOCK):
            stop = min(start + _BLOCK, last)
            lexical = (matrix[start:stop] @ transposed).toarray()
            score = _blend(lexical, latent[start:stop] @ latent.T if latent.shape[1] else None,
                           alpha)
            rows = np.arange(stop - start)
            score[rows, start + rows] = -np.inf
            lexical[rows, start + rows] = 0.0
            duplicate = lexical >= NEAR_DUPLICATE
            for r in range(stop - start):
                cols = np.flatnonzero(duplicate[r])
                cols = cols[np.lexsort((cols, -lexical[r, cols]))][:MAX_DUPLICATES]
                dup_idx.append(cols.astype(np.int32))
                dup_score.append(lexical[r, cols].astype(np.float32))
                dup_counts[start - first + r] = len(cols)
            score[duplicate] = -np.inf
            if k == 0:
                continue
            top = _top(score, k)
            top_score = np.take_along_axis(score, top, axis=1)
            ok = top_score >= MIN_SCORE
            nb_idx[start - first:stop - first, :k] = np.where(ok, top, -1)
            nb_score[start - first:stop - first, :k] = np.where(ok, top_score, 0.0)
    return (nb_idx, nb_score, dup_counts, _concat(dup_idx, np.int32),
            _concat(dup_score, np.float32))


def _no_neighbours(n: int) -> dict:
    """Empty neighbour arrays, for a model that scores neighbours when asked."""
    return {"nb_idx": np.full((n, 0), -1, np.int32), "nb_score": np.zeros((n, 0), np.float32),
            "nb_terms": np.full((n, 0, REASON_TERMS), -1, np.int32),
            "dup_ptr": np.zeros(n + 1, np.int64), "dup_idx": np.zeros(0, np.int32),
            "dup_score": np.zeros(0, np.float32)}


def _concat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def _blend(lexical: np.ndarray, latent: np.ndarray | None, alpha: float) -> np.ndarray:
    if latent is None:
        return lexical.astype(np.float32, copy=True)
    return (alpha * lexical + (1.0 - alpha) * latent).astype(np.float32)


def _top(score: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k best scores, best first (equal scores: lower index)."""
    if k < score.shape[1]:
        part = np.argpartition(-score, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(score.shape[1]), (score.shape[0], 1))
    part_score = np.take_along_axis(score, part, axis=1)
    order = np.lexsort((part, -part_score), axis=1)
    return np.take_along_axis(part, order, axis=1)


def _pair_reasons(matrix: sp.csr_matrix, nb_idx: np.ndarray, chunk: int = 20_000
                  ) -> np.ndarray:
    """For each (article, neighbour) pair, the REASON_TERMS terms with the largest w_a*w_b."""
    n, k = nb_idx.shape
    out = np.full((n, k, REASON_TERMS), -1, np.int32)
    src, slot = np.nonzero(nb_idx >= 0)
    for s in range(0, len(src), chunk):
        a, b, j = src[s:s + chunk], nb_idx[src[s:s + chunk], slot[s:s + chunk]], slot[s:s + chunk]
        prod = matrix[a].multiply(matrix[b]).tocsr()
        prod.eliminate_zeros()
        prod.sort_indices()
        row = np.repeat(np.arange(prod.shape[0]), np.diff(prod.indptr))
        order = np.lexsort((-prod.data, row))  # by row, then weight; stable: then term
        rank = np.arange(len(order)) - prod.indptr[row[order]]
        take = order[rank < REASON_TERMS]
        r, c = row[take], prod.indices[take]
        out[a[r], j[r], rank[rank < REASON_TERMS]] = c
    return out


# --- the model --------------------------------------------------------------------------


class Overlay(NamedTuple):
    """Articles written since the build, folded into its model, and the ids removed since."""

    ids: list[str]
    titles: list[str]
    matrix: sp.csr_matrix  # TF-IDF rows in the model's vocabulary, L2-normalised
    latent: np.ndarray  # their LSA rows (width 0 without LSA)
    removed: frozenset[str]  # articles of the build no longer in the index
    base: dict  # fingerprint of the model the rows were folded into


class RelatedModel:
    """A fitted model: neighbours of stored articles and of free text, with reasons."""

    def __init__(self, info: dict, arrays: dict):
        self.info = info
        self.settings = Settings(**info["settings"])
        self.ids: list[str] = info["ids"]
        self.titles: list[str] = info["titles"]
        self.display: list[str] = info["display"]
        self.column = {t: i for i, t in enumerate(info["vocab"])}
        self.position = {a: i for i, a in enumerate(self.ids)}
        self.arrays = arrays
        self.idf = arrays["idf"]
        self.matrix = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]),
                                    shape=(len(self.ids), len(self.idf)))
        self.fold, self.latent = arrays["fold"], arrays["latent"]
        self.overlay: Overlay | None = None
        self._hidden = np.zeros(len(self.ids), bool)  # build rows removed or replaced since
        self._extra: dict[str, int] = {}  # overlay article id -> its overlay row

    def __len__(self) -> int:
        return len(self.ids)

    def describe(self) -> dict:
        """Sizes worth recording in meta.json."""
        return {"model_version": MODEL_VERSION, "articles": len(self), "terms": len(self.idf),
                "lsa_dims": int(self.latent.shape[1]),
                "near_duplicate_articles": int((np.diff(self.arrays["dup_ptr"]) > 0).sum())}

    def nbytes(self) -> int:
        """Bytes held by the model's arrays."""
        return sum(a.nbytes for a in self.arrays.values())

    # --- the overlay ---

    def fingerprint(self) -> dict:
        """What identifies this fit: an overlay is only valid on the model it was folded into."""
        return {"articles": len(self.ids), "terms": len(self.idf),
                "lsa_dims": int(self.latent.shape[1]),
                "first": self.ids[0] if self.ids else "", "last": self.ids[-1] if self.ids else "",
                "idf_sum": float(np.sum(self.idf, dtype=np.float64))}

    def with_overlay(self, overlay: Overlay | None) -> "RelatedModel":
        """This model plus an overlay (sharing the arrays); ValueError when it does not fit."""
        if overlay is None:
            return self
        if self.overlay is not None:
            raise ValueError("the model already has an overlay")
        m = len(overlay.ids)
        if (overlay.base != self.fingerprint() or len(overlay.titles) != m
                or len(set(overlay.ids)) != m
                or overlay.matrix.shape != (m, len(self.idf))
                or overlay.latent.shape != (m, self.latent.shape[1])):
            raise ValueError("the overlay belongs to another model")
        model = copy.copy(self)
        model.overlay = overlay
        model._hidden = np.zeros(len(self.ids), bool)
        for article_id in (*overlay.removed, *overlay.ids):
            i = self.position.get(article_id)
            if i is not None:
                model._hidden[i] = True  # removed, or replaced by its overlay row
        model._extra = {a: k for k, a in enumerate(overlay.ids)}
        return model

    def fold_in(self, doc: ArticleTerms) -> tuple[sp.csr_matrix, np.ndarray]:
        """The TF-IDF row and LSA row an article gets without a refit (as `for_text` computes)."""
        query = self.vector(doc)
        lexical = np.asarray(self.matrix @ query.toarray().ravel(), dtype=np.float32)
        return query, self._fold(lexical)

    def _fold(self, lexical: np.ndarray) -> np.ndarray:
        if not self.latent.shape[1]:
            return np.zeros(0, np.float32)
        # einsum, not BLAS: a threaded gemv on a busy machine took 16 ms, this 0.1 ms
        return _normalise(np.einsum("i,ij->j", lexical, self.fold))

    # --- stored articles ---

    def for_article(self, article_id: str, limit: int = DEFAULT_LIMIT,
                    exists: Callable[[str], bool] | None = None) -> dict:
        """Return the neighbours and duplicates of a stored article.

        Articles of the build use the precomputed lists, merged with the overlay's
        articles; articles written since are scored on the fly. `exists` skips articles
        removed from the index but not from the model.
        """
        _check_limit(limit)
        k = self._extra.get(article_id)
        if k is not None:
            ov = self.overlay
            found = self._rank(ov.matrix[k], ov.latent[k], limit, [article_id])
            return {"id": article_id, "title": ov.titles[k], **_existing(found, exists)}
        i = self.position.get(article_id)
        if i is None or self._hidden[i]:
            raise ArticleNotFound(f"記事「{article_id[:80]}」は関連事例のモデルにありません。")
        if not self.info.get("precomputed", True):  # a large knowledge base: score now
            found = self._rank(self.matrix[i], self.latent[i] if self.latent.shape[1] else None,
                               limit, [article_id])
            return {"id": article_id, "title": self.titles[i], **_existing(found, exists)}
        if self.overlay is None:
            return self._stored(i, limit, exists)
        return self._merged(i, limit, exists)

    def _stored(self, i: int, limit: int, exists: Callable[[str], bool] | None) -> dict:
        related = []
        for slot, j in enumerate(self.arrays["nb_idx"][i]):
            if j < 0 or len(related) == limit:
                break
            if exists is not None and not exists(self.ids[j]):
                continue
            terms = [self.display[t] for t in self.arrays["nb_terms"][i, slot] if t >= 0]
            related.append(self._item(j, self.arrays["nb_score"][i, slot], terms))
        lo, hi = self.arrays["dup_ptr"][i], self.arrays["dup_ptr"][i + 1]
        duplicates = [self._duplicate(j, s) for j, s in
                      zip(self.arrays["dup_idx"][lo:hi], self.arrays["dup_score"][lo:hi])
                      if exists is None or exists(self.ids[j])]
        return {"id": self.ids[i], "title": self.titles[i], "related": related,
                "duplicates": duplicates}

    def _merged(self, i: int, limit: int, exists: Callable[[str], bool] | None) -> dict:
        """A build article's stored lists without stale rows, merged with the overlay's."""
        def live(j: int) -> bool:
            return not self._hidden[j] and (exists is None or exists(self.ids[j]))

        nb_idx = self.arrays["nb_idx"][i]
        kept = []
        for slot, j in enumerate(nb_idx):
            if j < 0 or len(kept) == limit:
                break
            if live(j):
                terms = [self.display[t] for t in self.arrays["nb_terms"][i, slot] if t >= 0]
                kept.append((float(self.arrays["nb_score"][i, slot]), j, terms))
        if len(kept) < limit and nb_idx[-1] >= 0:
            # Stale rows emptied a list that was cut at TOP_K: the next best are unknown.
            found = self._rank(self.matrix[i], self.latent[i], limit, [self.ids[i]])
            return {"id": self.ids[i], "title": self.titles[i], **_existing(found, exists)}
        lo, hi = self.arrays["dup_ptr"][i], self.arrays["dup_ptr"][i + 1]
        duplicates = [(float(s), j) for j, s in
                      zip(self.arrays["dup_idx"][lo:hi], self.arrays["dup_score"][lo:hi]) if live(j)]
        # Every build article beyond the stored list scores below it, so scoring the
        # overlay's articles against this one completes the list exactly.
        ov, n, row = self.overlay, len(self.ids), self.matrix[i]
        lexical = np.asarray((ov.matrix @ row.T).toarray().ravel(), dtype=np.float32)
        latent = (np.einsum("ij,j->i", ov.latent, self.latent[i]) if self.latent.shape[1]
                  else None)
        score = _blend(lexical, latent, self.settings.alpha)
        for k in np.flatnonzero(lexical >= NEAR_DUPLICATE):
            duplicates.append((float(lexical[k]), n + int(k)))
        for k in np.flatnonzero((lexical < NEAR_DUPLICATE) & (score >= MIN_SCORE)):
            kept.append((float(score[k]), n + int(k), None))
        kept.sort(key=lambda x: -x[0])  # stable: the stored order among equal scores
        duplicates.sort(key=lambda x: -x[0])

        def shown(pairs, size):
            # `exists` asks the index, so only the overlay entries about to be shown
            out = []
            for entry in pairs:
                if len(out) == size:
                    break
                if entry[1] < n or exists is None or exists(ov.ids[entry[1] - n]):
                    out.append(entry)
            return out

        related = [self._item(j, s, self._reasons(row, j) if terms is None else terms)
                   for s, j, terms in shown(kept, limit)]
        return {"id": self.ids[i], "title": self.titles[i], "related": related,
                "duplicates": [self._duplicate(j, s)
                               for s, j in shown(duplicates, MAX_DUPLICATES)]}

    # --- free text ---

    def for_text(self, text: str, limit: int = DEFAULT_LIMIT, *, title: str = "",
                 exclude: Iterable[str] = ()) -> dict:
        """Return the articles most like a piece of text (a draft, a pasted case)."""
        check_text(text)
        _check_limit(limit)
        doc = extract(analyze(title) if title else [], analyze(text), self.settings)
        query = self.vector(doc)
        known = int(query.nnz)
        result = {"related": [], "duplicates": [], "known_terms": known}
        if known == 0 or len(self) == 0:
            return result
        result.update(self._rank(query, None, limit, exclude))
        return result

    def _rank(self, query: sp.csr_matrix, folded: np.ndarray | None, limit: int,
              exclude: Iterable[str]) -> dict:
        """Score a TF-IDF row (and its LSA row) against every live article."""
        dense = query.toarray().ravel()
        lexical = np.asarray(self.matrix @ dense, dtype=np.float32)
        if folded is None:
            folded = self._fold(lexical)
        width = self.latent.shape[1]
        score = _blend(lexical, np.einsum("ij,j->i", self.latent, folded) if width else None,
                       self.settings.alpha)
        ov = self.overlay
        if ov is not None:
            extra = np.asarray(ov.matrix @ dense, dtype=np.float32)
            extra_score = _blend(extra, np.einsum("ij,j->i", ov.latent, folded) if width else None,
                                 self.settings.alpha)
            score = np.concatenate([np.where(self._hidden, -np.inf, score), extra_score])
            lexical = np.concatenate([np.where(self._hidden, 0.0, lexical), extra])
            score, lexical = score.astype(np.float32), lexical.astype(np.float32)
        for article_id in exclude:
            for j in self._rows(article_id):
                score[j] = -np.inf
                lexical[j] = 0.0
        duplicate = np.flatnonzero(lexical >= NEAR_DUPLICATE)
        duplicate = duplicate[np.lexsort((duplicate, -lexical[duplicate]))]
        score[duplicate] = -np.inf
        related = []
        if len(score):
            for j in _top(score[None, :], min(limit, len(score)))[0]:
                if score[j] < MIN_SCORE:
                    break
                related.append(self._item(j, score[j], self._reasons(query, j)))
        return {"related": related,
                "duplicates": [self._duplicate(j, lexical[j]) for j in duplicate[:MAX_DUPLICATES]]}

    def _rows(self, article_id: str) -> list[int]:
        rows = [self.position[article_id]] if article_id in self.position else []
        if article_id in self._extra:
            rows.append(len(self.ids) + self._extra[article_id])
        return rows

    def vector(self, doc: ArticleTerms) -> sp.csr_matrix:
        """The TF-IDF row (1 x vocabulary, L2-normalised) of some terms, as at fit time."""
        counts = Counter(t for t in _doc_terms(doc, self.settings) if t in self.column)
        cols = np.fromiter((self.column[t] for t in counts), np.int64, len(counts))
        tf = np.fromiter(counts.values(), np.float32, len(counts))
        if self.settings.sublinear_tf:
            tf = 1.0 + np.log(tf)
        order = np.argsort(cols)
        cols, weights = cols[order], (tf * self.idf[cols])[order]
        norm = float(np.linalg.norm(weights))
        if norm > 0:
            weights = weights / norm
        return sp.csr_matrix((weights.astype(np.float32), cols, [0, len(cols)]),
                             shape=(1, len(self.idf)))

    def _row(self, j: int) -> sp.csr_matrix:
        n = len(self.ids)
        return self.matrix[j] if j < n else self.overlay.matrix[j - n]

    def _name(self, j: int) -> tuple[str, str]:
        n = len(self.ids)
        if j < n:
            return self.ids[j], self.titles[j]
        return self.overlay.ids[j - n], self.overlay.titles[j - n]

    def _reasons(self, query: sp.csr_matrix, j: int) -> list[str]:
        prod = query.multiply(self._row(j)).tocsr()
        prod.eliminate_zeros()
        order = np.lexsort((prod.indices, -prod.data))[:REASON_TERMS]
        return [self.display[t] for t in prod.indices[order]]

    def _item(self, j: int, score: float, terms: list[str]) -> dict:
        article_id, title = self._name(j)
        return {"id": article_id, "title": title, "score": round(float(score), 4),
                "terms": terms}

    def _duplicate(self, j: int, score: float) -> dict:
        article_id, title = self._name(j)
        return {"id": article_id, "title": title, "score": round(float(score), 4)}

    # --- storage ---

    def save(self, folder: str | Path) -> None:
        """Write related.json and related.npz into a generation folder."""
        folder = Path(folder)
        np.savez(folder / ARRAYS_FILE, **self.arrays)
        with open(folder / INFO_FILE, "w", encoding="utf-8") as fh:
            json.dump(self.info, fh, ensure_ascii=False, separators=(",", ":"))


def _existing(found: dict, exists: Callable[[str], bool] | None) -> dict:
    if exists is None:
        return found
    return {name: [r for r in found[name] if exists(r["id"])]
            for name in ("related", "duplicates")}


def check_text(text: object) -> str:
    """Return text if it is usable free text, else raise BadRequest (400) or TooLarge (413)."""
    if not isinstance(text, str):
        raise BadRequest("文章を文字列で指定してください。")
    if not text.strip():
        raise BadRequest("文章が空です。関連事例を探したい文章を入力してください。")
    if len(text) > MAX_TEXT_CHARS:
        raise TooLarge(f"文章が長すぎます（{len(text):,} 文字）。{MAX_TEXT_CHARS:,} 文字以内にしてください。")
    return text


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"件数は 1 から {MAX_LIMIT} の整数で指定してください。")


# --- build hook and loading -------------------------------------------------------------


def after_write(gen_dir: Path, articles: Sequence, analysed: Sequence) -> dict:
    """The `after_write` hook of kb.index.build: fit the model and save it with the index."""
    docs = [_as_terms(item, DEFAULT_SETTINGS) for item in analysed]
    model = fit([a.id for a in articles], [a.title for a in articles], docs)
    model.save(gen_dir)
    return {"related": model.describe()}


_base_lock = threading.Lock()
_base_cache: tuple | None = None  # (folder and file stats, model): the last model loaded


def _files_key(folder: Path) -> tuple | None:
    try:
        stats = [(folder / name).stat() for name in (INFO_FILE, ARRAYS_FILE)]
    except OSError:
        return None
    return (str(folder.resolve()),) + tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)


def load_base(folder: str | Path) -> RelatedModel:
    """The model of a generation's last full build, without the overlay (cached: one model).

    The web app and the write hook of one process share it, so the big arrays are read
    once per generation, not once per write or per request.
    """
    global _base_cache
    folder = Path(folder)
    key = _files_key(folder)
    if key is not None:
        with _base_lock:
            if _base_cache is not None and _base_cache[0] == key:
                return _base_cache[1]
    model = _load_fitted(folder)
    if key is not None:
        with _base_lock:
            _base_cache = (key, model)
    return model


def _load_fitted(folder: Path) -> RelatedModel:
    hint = f"rebuild it: kb index corpus/ --index {folder.parent}"
    try:
        info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexIncompatible("この索引には関連事例のモデルがありません。索引を作り直してください。",
                                hint=hint) from None
    except (OSError, ValueError):
        raise IndexIncompatible("関連事例のモデルが読めません。索引を作り直してください。",
                                hint=hint) from None
    if (info.get("model_version") != MODEL_VERSION
            or info.get("analysis_version") != ANALYSIS_VERSION):
        raise IndexIncompatible(
            f"関連事例のモデルは別の版（モデル v{info.get('model_version', '?')}）で作られています。",
            hint=hint)
    try:
        with np.load(folder / ARRAYS_FILE, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        return RelatedModel(info, arrays)
    except (OSError, ValueError, KeyError, TypeError):
        raise IndexIncompatible("関連事例のモデルが壊れています。索引を作り直してください。",
                                hint=hint) from None


def load(folder: str | Path) -> RelatedModel:
    """Load the model stored in a generation folder, with its overlay; refuse another version."""
    return apply_overlay(load_base(folder), folder)[1]


def open_model(index_dir: str | Path) -> RelatedModel:
    """Load the model of an index folder's current generation."""
    from .index import check_meta, generation_dir, read_meta

    meta = read_meta(Path(index_dir))
    check_meta(meta, Path(index_dir))
    return load(generation_dir(Path(index_dir), meta))


# --- the overlay of incremental writes --------------------------------------------------


def overlay_key(folder: str | Path) -> tuple | None:
    """Identity of a generation's overlay file (None without one): changes on every write."""
    try:
        st = (Path(folder) / OVERLAY_FILE).stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def apply_overlay(base: RelatedModel, folder: str | Path) -> tuple[tuple | None, RelatedModel]:
    """Return (overlay_key, base with the folder's overlay).

    The overlay is optional data: when it is missing this is the base model; when it is
    unreadable or belongs to another model, a warning is logged and the base is served.
    """
    path = Path(folder) / OVERLAY_FILE
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return None, base
    except OSError as exc:
        log.warning("related-articles overlay %s unreadable (%s): serving the model of the "
                    "last full build", path, exc)
        return None, base
    with fh:
        st = os.fstat(fh.fileno())  # of the very file read, so a later write is noticed
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        try:
            return key, base.with_overlay(_read_overlay(fh))
        except Exception as exc:  # noqa: BLE001 - anything wrong here only costs freshness
            log.warning("related-articles overlay %s ignored (%s: %s): serving the model of "
                        "the last full build; `kb index` rebuilds it", path,
                        type(exc).__name__, exc)
            return key, base


def _read_overlay(fh) -> Overlay:
    with np.load(fh, allow_pickle=False) as npz:
        info = json.loads(npz["info"].tobytes().decode("utf-8"))
        if info.get("overlay_version") != OVERLAY_VERSION:
            raise ValueError(f"overlay version {info.get('overlay_version')!r}")
        ids, titles, removed = info["ids"], info["titles"], info["removed"]
        if not all(isinstance(x, str) for x in (*ids, *titles, *removed)):
            raise ValueError("ids and titles must be strings")
        matrix = sp.csr_matrix((npz["data"], npz["indices"], npz["indptr"]),
                               shape=(len(ids), int(info["base"]["terms"])))
        matrix.check_format(full_check=True)
        latent = npz["latent"]
    return Overlay(list(ids), list(titles), matrix, latent, frozenset(removed), info["base"])


def _overlay_bytes(overlay: Overlay) -> bytes:
    info = {"overlay_version": OVERLAY_VERSION, "base": overlay.base, "ids": overlay.ids,
            "titles": overlay.titles, "removed": sorted(overlay.removed)}
    buf = io.BytesIO()
    np.savez(buf, info=np.frombuffer(json.dumps(info, ensure_ascii=False).encode("utf-8"),
                                     np.uint8),
             data=overlay.matrix.data.astype(np.float32),
             indices=overlay.matrix.indices.astype(np.int32),
             indptr=overlay.matrix.indptr.astype(np.int64),
             latent=overlay.latent.astype(np.float32))
    return buf.getvalue()


def updated_overlay(model: RelatedModel, written: Sequence[tuple[str, str, ArticleTerms]],
                    removed: Iterable[str]) -> Overlay:
    """The overlay after writing (id, title, terms) articles, then removing ids.

    Writes come first, as in kb.index.update_generation. Each written article is folded
    into the fitted model: its vector uses the build's vocabulary and idf (new words
    are unknown until the next full build) and its LSA row the build's fold.
    """
    ov = model.overlay
    removed = list(removed)
    fresh: dict[str, tuple[str, sp.csr_matrix, np.ndarray]] = {}
    for article_id, title, doc in written:
        fresh[article_id] = (title, *model.fold_in(doc))
    for article_id in removed:
        fresh.pop(article_id, None)
    gone = set(ov.removed) if ov is not None else set()
    gone.difference_update(fresh)
    gone.update(a for a in removed if a in model.position)
    # Slice the kept rows in one go: row by row costs tens of ms on a large overlay.
    dropped = set(fresh).union(removed)
    kept = [k for k, a in enumerate(ov.ids) if a not in dropped] if ov is not None else []
    ids = [ov.ids[k] for k in kept] + list(fresh) if ov is not None else list(fresh)
    titles = [ov.titles[k] for k in kept] if ov is not None else []
    titles += [r[0] for r in fresh.values()]
    width = model.latent.shape[1]
    matrices = [ov.matrix[kept]] if ov is not None else []
    latents = [ov.latent[kept]] if ov is not None else []
    matrices += [r[1] for r in fresh.values()]
    latents += [r[2][None, :] for r in fresh.values()]
    if matrices:
        matrix = sp.vstack(matrices, format="csr", dtype=np.float32)
        latent = np.vstack(latents).astype(np.float32)
    else:
        matrix = sp.csr_matrix((0, len(model.idf)), dtype=np.float32)
        latent = np.zeros((0, width), np.float32)
    return Overlay(ids, titles, matrix, latent, frozenset(gone), model.fingerprint())


def write_overlay(folder: str | Path, overlay: Overlay) -> None:
    """Replace a generation's overlay atomically (temp file, fsync, rename, fsync folder)."""
    from .durable import TEMP_SUFFIX, write_atomic

    folder = Path(folder)
    for stale in folder.glob(f".{OVERLAY_FILE}.*{TEMP_SUFFIX}"):
        stale.unlink(missing_ok=True)  # left by a killed writer; we hold the writer lock
    write_atomic(folder / OVERLAY_FILE, _overlay_bytes(overlay))


def after_update(gen_dir: str | Path, articles: Sequence, remove_ids: Sequence[str]
                 ) -> dict | None:
    """kb.store's hook after an incremental commit: fold the changes into the overlay.

    Runs under the writer lock, before the write's intent is dropped, so a writer killed
    before the overlay is written has it redone by the next one's recovery. Never
    raises: the index commit stands, and a stale overlay only costs freshness (logged).
    Returns the overlay's size, or None when nothing was written.
    """
    gen_dir = Path(gen_dir)
    articles, remove_ids = list(articles), list(remove_ids)
    if not (articles or remove_ids) or not (gen_dir / INFO_FILE).exists():
        return None  # nothing to do, or an index built without the model
    try:
        base = load_base(gen_dir)
        _, model = apply_overlay(base, gen_dir)
        written = [(a.id, a.title, extract(analyze(a.title), analyze(a.body), base.settings))
                   for a in articles]
        overlay = updated_overlay(model, written, remove_ids)
        write_overlay(gen_dir, overlay)
    except Exception:  # noqa: BLE001 - the write itself succeeded
        log.warning("could not update the related-articles overlay in %s: related cases of "
                    "the articles just written may be stale until `kb index` rebuilds",
                    gen_dir, exc_info=True)
        return None
    return {"articles": len(overlay.ids), "removed": len(overlay.removed)}
