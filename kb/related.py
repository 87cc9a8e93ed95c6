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
"""
from __future__ import annotations

import json
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
        arrays.update(_neighbours(matrix, latent, settings.alpha))
    info = {"model_version": MODEL_VERSION, "analysis_version": ANALYSIS_VERSION,
            "settings": asdict(settings), "ids": list(ids), "titles": list(titles),
            "vocab": list(vocab), "display": list(display)}
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
    """Precompute every article's top neighbours, their reasons and its duplicates."""
    n = matrix.shape[0]
    k = min(TOP_K, max(n - 1, 0))
    nb_idx = np.full((n, TOP_K), -1, np.int32)
    nb_score = np.zeros((n, TOP_K), np.float32)
    dup_ptr = np.zeros(n + 1, np.int64)
    dup_idx: list[np.ndarray] = []
    dup_score: list[np.ndarray] = []
    transposed = matrix.T.tocsr()
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
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
            dup_ptr[start + r + 1] = dup_ptr[start + r] + len(cols)
        score[duplicate] = -np.inf
        if k == 0:
            continue
        top = _top(score, k)
        top_score = np.take_along_axis(score, top, axis=1)
        ok = top_score >= MIN_SCORE
        nb_idx[start:stop, :k] = np.where(ok, top, -1)
        nb_score[start:stop, :k] = np.where(ok, top_score, 0.0)
    return {"nb_idx": nb_idx, "nb_score": nb_score, "nb_terms": _pair_reasons(matrix, nb_idx),
            "dup_ptr": dup_ptr, "dup_idx": _concat(dup_idx, np.int32),
            "dup_score": _concat(dup_score, np.float32)}


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

    # --- stored articles ---

    def for_article(self, article_id: str, limit: int = DEFAULT_LIMIT,
                    exists: Callable[[str], bool] | None = None) -> dict:
        """Return the precomputed neighbours and duplicates of a stored article.

        `exists` skips articles removed from the index since the model was built.
        """
        _check_limit(limit)
        i = self.position.get(article_id)
        if i is None:
            raise ArticleNotFound(f"記事「{article_id[:80]}」は関連事例のモデルにありません。")
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
        return {"id": article_id, "title": self.titles[i], "related": related,
                "duplicates": duplicates}

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
        lexical = np.asarray(self.matrix @ query.toarray().ravel(), dtype=np.float32)
        latent = None
        if self.latent.shape[1]:
            # einsum, not BLAS: a threaded gemv on a busy machine took 16 ms, this 0.1 ms
            folded = _normalise(np.einsum("i,ij->j", lexical, self.fold))
            latent = np.einsum("ij,j->i", self.latent, folded)
        score = _blend(lexical, latent, self.settings.alpha)
        for article_id in exclude:
            if article_id in self.position:
                score[self.position[article_id]] = -np.inf
                lexical[self.position[article_id]] = 0.0
        duplicate = np.flatnonzero(lexical >= NEAR_DUPLICATE)
        duplicate = duplicate[np.lexsort((duplicate, -lexical[duplicate]))]
        score[duplicate] = -np.inf
        result["duplicates"] = [self._duplicate(j, lexical[j]) for j in duplicate[:MAX_DUPLICATES]]
        for j in _top(score[None, :], min(limit, len(score)))[0]:
            if score[j] < MIN_SCORE:
                break
            result["related"].append(self._item(j, score[j], self._reasons(query, j)))
        return result

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

    def _reasons(self, query: sp.csr_matrix, j: int) -> list[str]:
        prod = query.multiply(self.matrix[j]).tocsr()
        prod.eliminate_zeros()
        order = np.lexsort((prod.indices, -prod.data))[:REASON_TERMS]
        return [self.display[t] for t in prod.indices[order]]

    def _item(self, j: int, score: float, terms: list[str]) -> dict:
        return {"id": self.ids[j], "title": self.titles[j], "score": round(float(score), 4),
                "terms": terms}

    def _duplicate(self, j: int, score: float) -> dict:
        return {"id": self.ids[j], "title": self.titles[j], "score": round(float(score), 4)}

    # --- storage ---

    def save(self, folder: str | Path) -> None:
        """Write related.json and related.npz into a generation folder."""
        folder = Path(folder)
        np.savez(folder / ARRAYS_FILE, **self.arrays)
        with open(folder / INFO_FILE, "w", encoding="utf-8") as fh:
            json.dump(self.info, fh, ensure_ascii=False, separators=(",", ":"))


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


def load(folder: str | Path) -> RelatedModel:
    """Load the model stored in a generation folder; refuse one of another version."""
    folder = Path(folder)
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



def open_model(index_dir: str | Path) -> RelatedModel:
    """Load the model of an index folder's current generation."""
    from .index import check_meta, generation_dir, read_meta

    meta = read_meta(Path(index_dir))
    check_meta(meta, Path(index_dir))
    return load(generation_dir(Path(index_dir), meta))
