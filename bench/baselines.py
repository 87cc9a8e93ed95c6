"""Reference baselines the kb system is measured against in the same benchmark run.

Deliberately independent of kb/: each baseline uses only SudachiPy, bm25s and
scikit-learn, so a change in kb's analysis cannot move the yardstick too.
"""

from __future__ import annotations

import math
import os
import re
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import bm25s
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sudachipy import Dictionary, SplitMode, Tokenizer
from sudachipy.errors import SudachiError

# elasticsearch-sudachi's default stop tags, matched as prefixes of the POS tuple.
STOP_POS_PREFIXES: tuple[tuple[str, ...], ...] = (
    ("接続詞",),
    ("感動詞", "フィラー"),
    ("助動詞",),
    ("助詞",),
    ("記号",),
    ("補助記号",),
    ("空白",),
)

# Sudachi rejects input over 49,149 UTF-8 bytes (65,535 after its own normalisation);
# ~16 KB chunks leave room for characters that normalisation expands.
MAX_CHUNK_BYTES = 16_000
_CHUNK_PIECE = re.compile(r"[^\n。！？]*(?:[\n。！？]+|$)")
_SENTENCE = re.compile(r"[^\n。！？]+[。！？]*")

BM25_K1 = 1.2
BM25_B = 0.75


def _is_stop_pos(pos: tuple[str, ...]) -> bool:
    """Tell whether a POS tuple starts with one of the stop tags."""
    return any(pos[: len(prefix)] == prefix for prefix in STOP_POS_PREFIXES)


class SudachiTerms:
    """Text -> lower-cased Sudachi C-unit normalized forms without stop tags, cached per text."""

    def __init__(self) -> None:
        self._dictionary = Dictionary(dict="core")
        # The matcher evaluates the predicate once per POS id, not once per morpheme.
        self._is_stop = self._dictionary.pos_matcher(_is_stop_pos)
        # A Tokenizer is not thread-safe: one per thread, all sharing the dictionary.
        self._local = threading.local()
        self._cache: dict[str, tuple[str, ...]] = {}

    def __call__(self, text: str) -> tuple[str, ...]:
        """Return the terms of `text`, tokenising it only the first time it is seen."""
        cached = self._cache.get(text)
        if cached is None:
            cached = self._cache[text] = self._tokenize(text)
        return cached

    def many(self, texts: Iterable[str]) -> list[tuple[str, ...]]:
        """Return the terms of each text, tokenising unseen texts on all cores."""
        texts = list(texts)
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        workers = min(os.cpu_count() or 1, 4)
        if len(todo) > 1 and workers > 1:
            # Sudachi releases the GIL while it tokenises, so threads scale (~2x on 2 cores).
            with ThreadPoolExecutor(workers) as pool:
                for text, toks in zip(todo, pool.map(self._tokenize, todo)):
                    self._cache[text] = toks
        return [self(t) for t in texts]

    def _tokenizer(self) -> Tokenizer:
        tokenizer = getattr(self._local, "tokenizer", None)
        if tokenizer is None:
            tokenizer = self._local.tokenizer = self._dictionary.tokenizer(SplitMode.C)
        return tokenizer

    def _tokenize(self, text: str) -> tuple[str, ...]:
        tokenizer = self._tokenizer()
        out: list[str] = []
        for chunk in _chunks(text):
            out.extend(self._tokenize_chunk(tokenizer, chunk))
        return tuple(out)

    def _tokenize_chunk(self, tokenizer: Tokenizer, chunk: str) -> list[str]:
        try:
            morphemes = tokenizer.tokenize(chunk)
        except SudachiError:
            # Normalisation can still push a chunk past the limit (e.g. a run of "㍿"):
            # halve it until it fits.
            if len(chunk) < 2:
                raise
            half = len(chunk) // 2
            return self._tokenize_chunk(tokenizer, chunk[:half]) + self._tokenize_chunk(
                tokenizer, chunk[half:]
            )
        # Interning keeps a large corpus's repeated terms as one string object each.
        return [
            sys.intern(m.normalized_form().lower()) for m in morphemes if not self._is_stop(m)
        ]


def _chunks(text: str, limit: int = MAX_CHUNK_BYTES) -> list[str]:
    """Split text at newlines and 。！？ into pieces of at most `limit` UTF-8 bytes."""
    if len(text.encode("utf-8")) <= limit:
        return [text]
    chunks: list[str] = []
    current, current_bytes = [], 0
    for piece in _CHUNK_PIECE.findall(text):
        size = len(piece.encode("utf-8"))
        if current and current_bytes + size > limit:
            chunks.append("".join(current))
            current, current_bytes = [], 0
        if size > limit:
            # A sentence longer than the limit: cut by characters (4 bytes at most each).
            step = limit // 4
            chunks.extend(piece[i : i + step] for i in range(0, len(piece), step))
            continue
        current.append(piece)
        current_bytes += size
    if current:
        chunks.append("".join(current))
    return [c for c in chunks if c]


_terms_instance: SudachiTerms | None = None


def terms() -> SudachiTerms:
    """Return the process-wide analyser (one Sudachi dictionary per process)."""
    global _terms_instance
    if _terms_instance is None:
        _terms_instance = SudachiTerms()
    return _terms_instance


# --- a. BM25 paragraph retrieval -------------------------------------------------------


class ParagraphBM25:
    """bm25s over the paragraphs' terms, with Lucene-style idf for reuse by naive Q&A."""

    def __init__(
        self,
        paragraphs: Sequence[dict],
        *,
        with_title: bool = True,
        method: str = "lucene",
        k1: float = BM25_K1,
        b: float = BM25_B,
    ) -> None:
        analyse = terms()
        # Title and body are tokenised apart so the body-only variant reuses the cache.
        bodies = analyse.many(p["body"] for p in paragraphs)
        if with_title:
            titles = analyse.many(p["title"] for p in paragraphs)
            docs = [list(title) + list(body) for title, body in zip(titles, bodies)]
        else:
            docs = [list(body) for body in bodies]
        self.ids = [p["id"] for p in paragraphs]
        self.retriever = bm25s.BM25(k1=k1, b=b, method=method)
        self.retriever.index(docs, show_progress=False)
        df = Counter(t for doc in docs for t in set(doc))
        n = len(docs)
        self.idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
        # A term no paragraph holds would have df=0.
        self.idf_unseen = math.log(1 + (n + 0.5) / 0.5)

    def scores(self, query_terms: Sequence[str]) -> np.ndarray:
        """Return one BM25 score per paragraph."""
        known = [t for t in query_terms if t in self.retriever.vocab_dict]
        if not known:
            return np.zeros(len(self.ids), dtype=np.float32)
        return self.retriever.get_scores(known)

    def search(self, query_terms: Sequence[str], k: int = 10) -> list[str]:
        """Return the ids of the top-k paragraphs, ties broken by paragraph order."""
        scores = self.scores(query_terms)
        # A stable sort on -score keeps results reproducible where scores tie.
        order = np.argsort(-scores, kind="stable")[:k]
        return [self.ids[i] for i in order]


def bm25_paragraph_baseline(
    paragraphs: Sequence[dict],
    questions: Sequence[dict],
    k: int = 10,
    *,
    with_title: bool = True,
    method: str = "lucene",
) -> list[list[str]]:
    """Rank paragraphs for each question with bm25s (k1=1.2, b=0.75); ids aligned with questions."""
    index = ParagraphBM25(paragraphs, with_title=with_title, method=method)
    query_terms = terms().many(q["q"] for q in questions)
    return [index.search(qt, k) for qt in query_terms]


# --- b. TF-IDF related articles ---------------------------------------------------------


def _pretokenised(doc: Sequence[str]) -> Sequence[str]:
    """Pass pre-tokenised documents through TfidfVectorizer unchanged."""
    return doc


def tfidf_related_baseline(
    articles: Sequence[dict], k: int = 10, *, with_title: bool = True, block: int = 512
) -> list[list[str]]:
    """Return each article's top-k cosine neighbours (itself excluded); ids aligned with articles."""
    analyse = terms()
    bodies = analyse.many(a["body"] for a in articles)
    if with_title:
        titles = analyse.many(a["title"] for a in articles)
        docs = [title + body for title, body in zip(titles, bodies)]
    else:
        docs = bodies
    vectorizer = TfidfVectorizer(
        analyzer=_pretokenised, sublinear_tf=True, min_df=2, max_df=0.5, dtype=np.float32
    )
    # Rows come out L2-normalised, so a dot product is the cosine.
    matrix = vectorizer.fit_transform(docs).tocsr()
    transposed = matrix.T.tocsr()
    ids = [a["id"] for a in articles]
    neighbours: list[list[str]] = []
    # Score in blocks of rows: the dense n x n matrix would be ~220 MB for livedoor.
    for start in range(0, matrix.shape[0], block):
        sims = (matrix[start : start + block] @ transposed).toarray()
        rows = np.arange(sims.shape[0])
        sims[rows, start + rows] = -np.inf
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        neighbours.extend([ids[j] for j in row] for row in order)
    return neighbours


# --- c. Naive extractive Q&A ------------------------------------------------------------


def split_sentences(text: str) -> list[str]:
    """Split Japanese text after 。！？ and at newlines, keeping the end marks."""
    return [s.strip() for s in _SENTENCE.findall(text) if s.strip()]


def naive_qa_baseline(
    paragraphs: Sequence[dict], questions: Sequence[dict], *, with_title: bool = True
) -> list[dict]:
    """Answer each question with the best-matching sentence of the top BM25 paragraph."""
    analyse = terms()
    index = ParagraphBM25(paragraphs, with_title=with_title)
    # Split and tokenise every paragraph's sentences up front, in one parallel batch.
    sentences = {p["id"]: split_sentences(p["body"]) or [p["body"]] for p in paragraphs}
    analyse.many(s for group in sentences.values() for s in group)
    query_terms = analyse.many(q["q"] for q in questions)
    answers: list[dict] = []
    for question, qt in zip(questions, query_terms):
        paragraph_id = index.search(qt, 1)[0]
        wanted = {t: index.idf.get(t, index.idf_unseen) for t in set(qt)}
        best, best_score = sentences[paragraph_id][0], 0.0
        for sentence in sentences[paragraph_id]:
            present = set(analyse(sentence))
            score = sum(w for t, w in wanted.items() if t in present)
            # Strictly greater: the earliest sentence wins a tie.
            if score > best_score:
                best, best_score = sentence, score
        answers.append(
            {
                "question_id": question["id"],
                "paragraph_id": paragraph_id,
                "answer": best,
                "score": best_score,
            }
        )
    return answers
