"""Features for Q&A: articles read as sentences, and how well a sentence matches a question.

Everything here is plain Python over `kb.analysis` morphs, so the training script
(bench/qa_train.py) and `kb.qa.ask` compute exactly the same numbers. Features are
sparse dicts {name: value}; the models in kb/qa_weights.py are weights by name. The
answer candidates inside a sentence are kb/qa_spans.py's.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

from .analysis import Morph, analyze, split_sentences
from .answer_types import (DATE, DURATION_UNITS, MONEY, ORGANIZATION, PERSON, PLACE, QUANTITY,
                           Question)

CACHE_SIZE = 512
_NAMING = frozenset({"言う", "呼ぶ", "称する", "名付ける", "名乗る", "通称", "名称", "呼称", "略す"})
_GRAM_SKIP = frozenset("？?。、！!「」『』（）() 　はがをにでのかと")
# Words that open a sentence continuing the one before (これを石油諸税と言う).
_ANAPHORS = frozenset({"これ", "この", "それ", "その", "此れ", "此の", "其れ", "其の", "こう",
                       "そう", "同", "こうした", "そうした", "このため", "そのため"})


# --- analysed articles ----------------------------------------------------------------


@dataclass
class Sentence:
    """One sentence of an article: offsets in the body, its words and the text between."""

    index: int
    start: int
    end: int
    units: list[Morph]  # C units, offsets in the article body
    gaps: list[str]  # gaps[i] precedes units[i]; gaps[-1] trails the last unit
    terms: frozenset[str]  # every C and A term


@dataclass
class Passage:
    """An article as Q&A reads it: title, body and analysed sentences."""

    id: str
    title: str
    body: str
    sentences: list[Sentence]
    title_terms: frozenset[str]
    terms: frozenset[str]
    rank: int = 0  # place in the search results (0 = first)
    score: float = 0.0  # search score


def _terms_of(units) -> set[str]:
    out: set[str] = set()
    for m in units:
        out.add(m.text)
        out.update(m.parts)
    return out


def analyse_passage(article_id: str, title: str, body: str) -> Passage:
    """Analyse an article body into sentences of C units with the gaps between them."""
    morphs = [m for m in analyze(body, "index") if not m.sub]
    sentences: list[Sentence] = []
    k = 0
    for start, end in split_sentences(body):
        while start < end and body[start] in "#＃ \u3000":
            start += 1  # a Markdown heading's marks are not part of its sentence
        while k < len(morphs) and morphs[k].start < start:
            k += 1
        units = []
        while k < len(morphs) and morphs[k].end <= end:
            units.append(morphs[k])
            k += 1
        if not units:
            continue
        gaps, pos = [], start
        for m in units:
            gaps.append(body[pos:m.start])
            pos = m.end
        gaps.append(body[pos:end])
        sentences.append(Sentence(len(sentences), start, end, units, gaps,
                                  frozenset(_terms_of(units))))
    title_terms = frozenset(_terms_of(analyze(title, "query")))
    return Passage(article_id, title, body, sentences, title_terms,
                   title_terms | frozenset(_terms_of(morphs)))


class PassageCache:
    """A small LRU of analysed articles, keyed by index generation and article id."""

    def __init__(self, size: int = CACHE_SIZE):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, article_id: str, title: str, body: str) -> Passage:
        """Return the analysed article, analysing it on a miss."""
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit.title == title and hit.body == body:
                self._items.move_to_end(key)
                return hit
        passage = analyse_passage(article_id, title, body)
        with self._lock:
            self._items[key] = passage
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return passage


# --- question term weights ----------------------------------------------------------


@dataclass
class Weights:
    """The question's content words with their idf weights, and how they are looked up."""

    units: list[int]  # indices into Question.units
    weight: dict[int, float]
    total: float
    lookup: dict[str, list[int]]  # term -> question units it can match
    unseen: float  # share of the weight in words no article holds
    max_idf: float


def idf(df: int, n_docs: int) -> float:
    """BM25's idf, never negative."""
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


def weigh_question(q: Question, doc_frequency, n_docs: int) -> Weights:
    """Weight each content word by idf (doc_frequency: term -> number of articles)."""
    weight: dict[int, float] = {}
    lookup: dict[str, list[int]] = {}
    unseen = 0.0
    for k in q.content:
        m = q.units[k]
        df = doc_frequency(m.text)
        w = idf(df, n_docs)
        if df == 0 and m.parts:
            part_dfs = [doc_frequency(p) for p in m.parts]
            if any(part_dfs):
                w = max(idf(d, n_docs) for d in part_dfs if d) * 0.8
            else:
                unseen += w
        elif df == 0:
            unseen += w
        weight[k] = w
        for t in {m.text, m.surface.lower(), *m.parts}:
            lookup.setdefault(t, []).append(k)
    total = sum(weight.values()) or 1.0
    return Weights(list(q.content), weight, total, lookup, unseen / total,
                   idf(0, n_docs))


def _strength(qm: Morph, sm: Morph) -> float:
    if qm.text == sm.text or qm.surface == sm.surface:
        return 1.0
    if qm.text in sm.parts or sm.text in qm.parts:
        return 0.8
    if qm.parts and sm.parts:
        return len(set(qm.parts) & set(sm.parts)) / len(qm.parts) * 0.8
    return 0.0


def match_units(q: Question, wts: Weights, s: Sentence) -> list[tuple[int, int, float]]:
    """Return (sentence unit, question unit, strength) for every word the two share."""
    out = []
    for i, sm in enumerate(s.units):
        seen = set()
        for t in (sm.text, sm.surface.lower(), *sm.parts):
            for k in wts.lookup.get(t, ()):
                if k in seen:
                    continue
                seen.add(k)
                st = _strength(q.units[k], sm)
                if st > 0:
                    out.append((i, k, st))
    return out


def coverage(q: Question, wts: Weights, terms: frozenset[str]) -> float:
    """Share of the question's weight whose words occur in a set of terms."""
    got = 0.0
    for k in wts.units:
        m = q.units[k]
        if m.text in terms or m.surface.lower() in terms:
            got += wts.weight[k]
        elif m.parts:
            got += wts.weight[k] * 0.8 * sum(p in terms for p in m.parts) / len(m.parts)
    return got / wts.total


# --- sentences --------------------------------------------------------------------------


def _has_expected(q: Question, s: Sentence) -> float:
    """1.0 when the sentence holds a word of the kind asked for (a number for 何件)."""
    t = q.answer_type
    for k, m in enumerate(s.units):
        if t in (QUANTITY, MONEY, DATE) and m.pos[1] == "数詞":
            if q.unit is None:
                return 1.0
            nxt = s.units[k + 1] if k + 1 < len(s.units) else None
            if nxt is not None and (nxt.text == q.unit or nxt.surface == q.unit or (
                    q.unit in DURATION_UNITS | {"時間"} and nxt.surface in DURATION_UNITS)):
                return 1.0
        elif t == PERSON and m.pos[2] == "人名":
            return 1.0
        elif t == PLACE and m.pos[2] == "地名":
            return 1.0
        elif t == ORGANIZATION and m.pos[1] == "固有名詞":
            return 1.0
        elif t == DATE and m.surface in ("令和", "平成", "昭和", "大正", "明治"):
            return 1.0
    return 0.0


def _asks_name(q: Question) -> bool:
    """True for 「…を何と言う？」「…は何と呼ばれる？」: the answer is a name."""
    return q.wh is not None and any(m.text in _NAMING for m in q.units[q.wh + 1:q.wh + 3])


def q_grams(q: Question) -> tuple[set[str], set[str], set[str]]:
    """Character 2-, 3- and 4-grams of the question's content (cached on the question)."""
    grams = getattr(q, "_grams", None)
    if grams is None:
        text = "".join(ch for ch in q.text if ch not in _GRAM_SKIP)
        grams = tuple({text[i:i + n] for i in range(len(text) - n + 1)} for n in (2, 3, 4))
        q._grams = grams  # type: ignore[attr-defined]
    return grams


def _containment(grams: set[str], text: str, n: int) -> float:
    """Share of the question's character n-grams found in a text (robust to word splits)."""
    if not grams:
        return 0.0
    found = {text[i:i + n] for i in range(len(text) - n + 1)}
    return len(grams & found) / len(grams)


def sentence_features(q: Question, wts: Weights, p: Passage, s: Sentence,
                      matches: list[tuple[int, int, float]], top_score: float) -> dict:
    """Features of a sentence as the place of the answer."""
    got: dict[int, float] = {}
    for _, k, st in matches:
        if st > got.get(k, 0.0):
            got[k] = st
    cov = sum(wts.weight[k] * st for k, st in got.items()) / wts.total
    sents = p.sentences
    ctx = set(s.terms)
    if s.index > 0:
        ctx |= sents[s.index - 1].terms
    if s.index + 1 < len(sents):
        ctx |= sents[s.index + 1].terms
    # question word pairs that stay next to each other in the sentence
    pos = {}
    for i, k, st in matches:
        pos.setdefault(k, []).append(i)
    pairs = kept = 0
    content = wts.units
    for a, b in zip(content, content[1:]):
        pairs += 1
        if any(0 < j - i <= 3 for i in pos.get(a, ()) for j in pos.get(b, ())):
            kept += 1
    f = q.focus
    before = [k for k in content if k < f]
    after = [k for k in content if k > f]
    rank = p.rank
    n = len(s.units)
    hit_units = sorted({i for i, _, _ in matches})
    missing = [wts.weight[k] for k in content if got.get(k, 0.0) < 0.5]
    first = s.units[0].surface if s.units else ""
    prev_cov = coverage(q, wts, sents[s.index - 1].terms) if s.index > 0 else 0.0
    text = p.body[s.start:s.end]
    grams = q_grams(q)
    naming = _asks_name(q)
    names = naming and any(m.text in _NAMING for m in s.units)
    return {
        "s_naming": 1.0 if names else 0.0,
        "s_naming_anaphor": prev_cov if names and first in _ANAPHORS else 0.0,
        "s_q_naming": 1.0 if naming else 0.0,
        "s_char2": _containment(grams[0], text, 2),
        "s_char3": _containment(grams[1], text, 3),
        "s_char4": _containment(grams[2], text, 4),
        "s_cov_prev": prev_cov,
        "s_cov_next": coverage(q, wts, sents[s.index + 1].terms)
        if s.index + 1 < len(sents) else 0.0,
        "s_anaphor": 1.0 if first in _ANAPHORS else 0.0,
        "s_anaphor_prev": prev_cov if first in _ANAPHORS else 0.0,
        "s_novel": 1.0 - len(hit_units) / n if n else 0.0,
        "s_missing": max(missing) / wts.total if missing else 0.0,
        "s_compact": len(hit_units) / (hit_units[-1] - hit_units[0] + 1) if hit_units else 0.0,
        "s_cov_top": cov if rank == 0 else 0.0,
        "bias": 1.0,
        "s_cov": cov,
        "s_cov2": cov * cov,
        "s_cov_ctx": coverage(q, wts, frozenset(ctx)),
        "s_cov_title": coverage(q, wts, p.title_terms),
        "s_cov_art": coverage(q, wts, p.terms),
        "s_cov_st": coverage(q, wts, s.terms | p.title_terms),
        "s_matched": len(got) / max(len(content), 1),
        "s_pairs": kept / pairs if pairs else 0.0,
        "s_wh_left": got.get(before[-1], 0.0) if before else 0.0,
        "s_wh_right": got.get(after[0], 0.0) if after else 0.0,
        f"s_rank{min(rank, 4)}": 1.0,
        "s_score": p.score / top_score if top_score > 0 else 0.0,
        "s_first": 1.0 if s.index == 0 else 0.0,
        "s_pos": s.index / max(len(sents), 1),
        "s_len": math.log1p(len(s.units)),
        "s_expected": _has_expected(q, s),
        f"s_type_{q.answer_type}": 1.0,
    }


def passage_features(q: Question, wts: Weights, p: Passage, rows: list[dict]) -> None:
    """Add features that compare a sentence with the rest of its article (in place).

    A question that restates one sentence often asks for the article's subject, named
    only in the sentence that holds the title, or for the next sentence's 「これを…と言う」.
    """
    if not rows:
        return
    covs = [r["s_cov"] for r in rows]
    best = max(covs)
    title = p.title.strip()
    title_in_q = 1.0 if title and title in q.text else 0.0
    for s, r in zip(p.sentences, rows):
        r["s_best_other"] = max((c for k, c in enumerate(covs) if k != s.index), default=0.0)
        r["s_is_best"] = 1.0 if r["s_cov"] >= best else 0.0
        if title and title in p.body[s.start:s.end]:
            r["s_has_title"] = 1.0
            r["s_title_best"] = best * (1.0 - title_in_q)
            r["s_title_in_q"] = title_in_q


__all__ = ["Passage", "PassageCache", "Sentence", "Weights", "analyse_passage", "coverage",
           "idf", "match_units", "passage_features", "sentence_features", "weigh_question"]
