"""Features for Q&A: how well a sentence matches a question, how answer-like a span is.

Everything here is plain Python over `kb.analysis` morphs, so the training script
(bench/qa_train.py) and `kb.qa.ask` compute exactly the same numbers. Features are
sparse dicts {name: value}; the models in kb/qa_weights.py are weights by name.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from .analysis import Morph, analyze, split_sentences
from .answer_types import (DATE, DURATION_UNITS, ERAS, LEGAL_FORMS, MONEY, NUMBER, ORGANIZATION,
                           PERSON, PLACE, PROPER, QUANTITY, Question, is_counter, is_number,
                           span_types, span_unit)

MAX_SPAN_UNITS = 7
MAX_SPAN_CHARS = 40
# Text that may sit between the words of one answer (5月*から*7月, 国民健康保険*・*年金).
_INNER_GAPS = frozenset({"", "の", "・", "、", "と", "や", "（", "）", " ", "　", "-", "－", "＝",
                         "=", "/", "／", "「", "」", "『", "』", "および", "及び", "または",
                         "あるいは", "から", "など", "などの", "ー", "～", "〜", ":", "：", ".",
                         ",", "，", "&", "＆", "+", "'", "（「", "」）", "『", "』の", "」の"})
_START_POS = frozenset({"名詞", "接頭辞", "形状詞", "代名詞", "連体詞"})
_END_POS = frozenset({"名詞", "接尾辞"})
_STOP_POS = frozenset({"動詞", "形容詞", "副詞", "感動詞"})
_OPENERS = {"（": "）", "「": "」", "『": "』", "(": ")", "【": "】", "〈": "〉", "《": "》"}
# Kana that end a company name rather than continue it (株式会社あおしおが受託).
_NAME_BREAKS = frozenset({"が", "を", "に", "は", "で", "と", "の", "へ", "も", "や", "から",
                          "より", "など", "まで", "では", "には", "とは"})
_DATE_PARTS = frozenset({"年", "年度", "月"})
_PARTICLES = ("は", "が", "を", "に", "の", "と", "で", "も", "や", "から", "へ", "まで", "より",
              "として", "という", "など")
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
    extra: dict = field(default_factory=dict)


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
    for n, (start, end) in enumerate(split_sentences(body)):
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
        "s_anaphor": 1.0 if first in _ANAPHORS or first[:1] in ("こ", "そ") and
        first in _ANAPHORS else 0.0,
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


# --- answer spans -----------------------------------------------------------------------


@dataclass
class Span:
    """A candidate answer: units i..j of a sentence, and where it sits in the body."""

    sentence: Sentence
    i: int
    j: int
    start: int
    end: int
    text: str
    types: frozenset[str]
    features: dict
    score: float = 0.0


def _gap_class(gap: str, after: bool) -> str:
    if gap == "":
        return "none"
    g = gap.strip()
    if not g:
        return "space"
    if after:
        for p in _PARTICLES:
            if g.startswith(p):
                return p
        if g[0] in "）」』)】":
            return "close"
        if g[0] in "、，,":
            return "comma"
        if g[0] in "。！？!?":
            return "end"
    else:
        for p in _PARTICLES:
            if g.endswith(p):
                return p
        if g[-1] in "（「『(【":
            return "open"
        if g[-1] in "、，,":
            return "comma"
    return "other"


def _particle(gap: str, after: bool) -> str:
    """The particle of a gap in the question: after the interrogative, or before it."""
    g = gap.strip()
    for p in sorted(_PARTICLES, key=len, reverse=True):
        if (g.startswith(p) if after else g.endswith(p)):
            return p
    return ""


def _closes(gaps_inside: list[str], trailing: str) -> tuple[bool, int]:
    """Whether brackets opened inside a span are closed; how many trailing chars to take."""
    depth = []
    for g in gaps_inside:
        for ch in g:
            if ch in _OPENERS:
                depth.append(_OPENERS[ch])
            elif depth and ch == depth[-1]:
                depth.pop()
    if not depth:
        return True, 0
    if len(depth) == 1 and trailing.startswith(depth[0]):
        return True, 1
    return False, 0


def expected(q: Question, span: Span) -> bool:
    """True when a span is of the kind the question asks for (何件 -> a number of 件)."""
    t = q.answer_type
    if t == MONEY:
        return MONEY in span.types
    if t == DATE:
        return DATE in span.types
    if t == QUANTITY and q.unit is not None:
        return NUMBER in span.types and "c_unit" in span.features
    if t == PERSON:
        return PERSON in span.types
    if t == ORGANIZATION:
        return ORGANIZATION in span.types or PROPER in span.types
    return False


def span_candidates(q: Question, wts: Weights, p: Passage, s: Sentence,
                    matches: list[tuple[int, int, float]]) -> list[Span]:
    """Return the answer candidates of a sentence with their features."""
    units, gaps = s.units, s.gaps
    n = len(units)
    body = p.body
    matched: dict[int, list[tuple[int, float]]] = {}
    for i, k, st in matches:
        matched.setdefault(i, []).append((k, st))
    f = q.focus
    head = q.head
    skip_head = 1 if (q.wh is not None and head is not None and f + 1 < len(q.units)
                      and q.units[f + 1] is head) else 0
    left1 = f - 1 if q.wh is not None else None
    right1 = f + 1 + skip_head if q.wh is not None else None
    q_before = _particle(q.gaps[f], after=False) if q.wh is not None else ""
    q_after = _particle(q.gaps[f + 1 + skip_head], after=True) if q.wh is not None else ""
    if q.wh is None and head is not None:
        # 「…気団は？」: the answer stands where the head noun stands
        q_after = _particle(q.gaps[-1], after=True)
    total = wts.total
    qtype = q.answer_type
    out: list[Span] = []
    numeric = [is_number(m) for m in units]
    for i in range(n):
        if units[i].pos[0] not in _START_POS:
            continue
        if i > 0 and gaps[i] == "" and (numeric[i - 1] or units[i - 1].surface in ERAS):
            continue  # never start inside 令和5年 or 1,340件
        if (i > 0 and gaps[i] == "" and numeric[i] and units[i - 1].text in _DATE_PARTS
                and not (i + 1 < n and units[i + 1].text == q.unit)):
            continue  # nor cut 10月 from 令和5年10月, unless 何月 is asked
        if units[i].text in LEGAL_FORMS:
            j = _name_end(units, gaps, i)
            if j > i:  # 株式会社 + its name, whole: Sudachi splits kana names oddly
                start, end = units[i].start, units[j].end
                out.append(_span(q, wts, p, s, i, j, start, end, body[start:end],
                                 units[i:j + 1], matched, total, qtype, head, left1, right1,
                                 q_before, q_after))
                continue
        for j in range(i, min(n, i + MAX_SPAN_UNITS)):
            if j > i and gaps[j] not in _INNER_GAPS:
                break
            if units[j].pos[0] in _STOP_POS:
                break
            if units[j].pos[0] not in _END_POS or units[j].pos[1] == "形容詞的":
                continue
            if j + 1 < n and gaps[j + 1] == "" and numeric[j] and is_counter(units[j + 1]):
                continue  # a number keeps its counter
            if units[j].surface in ERAS or (j + 1 < n and gaps[j + 1] == "" and
                                            units[j].text in LEGAL_FORMS):
                continue  # 令和 and 株式会社 never end an answer: their name follows
            ok, extra = _closes(gaps[i + 1:j + 1], gaps[j + 1])
            if not ok:
                continue
            start, end = units[i].start, units[j].end + extra
            if end - start > MAX_SPAN_CHARS:
                break
            text = body[start:end]
            cand = units[i:j + 1]
            out.append(_span(q, wts, p, s, i, j, start, end, text, cand, matched, total,
                             qtype, head, left1, right1, q_before, q_after))
    return out


def _name_end(units: list[Morph], gaps: list[str], i: int) -> int:
    """The last unit of the name after a legal form at units[i] (株式会社あおしお…)."""
    j = i
    while j + 1 < len(units) and j - i < MAX_SPAN_UNITS + 2:
        gap = gaps[j + 1]
        if gap and not (len(gap) <= 2 and all("\u3041" <= ch <= "\u309f" for ch in gap)
                        and gap not in _NAME_BREAKS):
            break
        if units[j + 1].pos[0] == "動詞" and gaps[j + 2:j + 3] != [""]:
            break  # a verb that ends the clause, not a kana piece of the name
        j += 1
    return j


def _span(q, wts, p, s, i, j, start, end, text, cand, matched, total, qtype, head, left1,
          right1, q_before, q_after) -> Span:
    units, gaps = s.units, s.gaps
    n = len(units)
    types = frozenset(span_types(cand, text))
    f = q.focus
    feats: dict[str, float] = {"bias": 1.0}
    length = j - i + 1
    feats[f"c_len{min(length, 5)}"] = 1.0
    feats["c_chars"] = math.log1p(len(text))
    # words of the question inside the candidate: an answer rarely repeats the question
    inside = [max(st for _, st in matched[x]) for x in range(i, j + 1) if x in matched]
    feats["c_overlap"] = len(inside) / length
    feats["c_all_in_q"] = 1.0 if len(inside) == length else 0.0
    feats["c_overlap_w"] = sum(wts.weight[k] * st for x in range(i, j + 1)
                               for k, st in matched.get(x, ())) / total
    # question words around the candidate, on the side they stand on in the question
    left = right = near = 0.0
    dist = 99
    adj_left = adj_right = 0.0
    for x, ks in matched.items():
        if i <= x <= j:
            continue
        d = i - x if x < i else x - j
        dist = min(dist, d)
        for k, st in ks:
            w = wts.weight[k] * st
            if d <= 6:
                near += w
            if x < i and d <= 4 and k < f:
                left += w / d
            elif x > j and d <= 4 and k > f:
                right += w / d
            if x == i - 1 and k == left1:
                adj_left = max(adj_left, st)
            if x == j + 1 and k == right1:
                adj_right = max(adj_right, st)
    feats["c_left"] = left / total
    feats["c_right"] = right / total
    feats["c_near"] = near / total
    feats["c_dist"] = 1.0 / (1 + dist) if dist < 99 else 0.0
    feats["c_adj_left"] = adj_left
    feats["c_adj_right"] = adj_right
    ga = _gap_class(gaps[j + 1], after=True)
    gb = _gap_class(gaps[i], after=False) if i > 0 or gaps[i] else "start"
    feats[f"c_ga_{ga}"] = 1.0
    feats[f"c_gb_{gb}"] = 1.0
    if q_after and gaps[j + 1].strip().startswith(q_after):
        feats["c_same_after"] = 1.0
        feats[f"c_same_after_{q_after}"] = 1.0
    if q_before and gaps[i].strip().endswith(q_before):
        feats["c_same_before"] = 1.0
    if gaps[i] == "" and i > 0 and units[i - 1].pos[0] in ("名詞", "接頭辞"):
        feats["c_cut_left"] = 1.0
    if gaps[j + 1] == "" and j + 1 < n and units[j + 1].pos[0] in ("名詞", "接尾辞"):
        feats["c_cut_right"] = 1.0
    if gaps[i][-1:] in _OPENERS and gaps[j + 1][:1] == _OPENERS[gaps[i][-1]]:
        feats["c_bracketed"] = 1.0
    feats[f"c_fp_{cand[0].pos[0]}"] = 1.0
    if i > 0 and gaps[i] == "" and units[i - 1].text in ("年", "年度", "月") and is_number(cand[0]):
        feats["c_date_cut"] = 1.0  # 7月 cut from 2017年7月
    if len(cand) > 1 and cand[0].pos[0] == "名詞" and not is_number(cand[0]) and (
            is_number(cand[1]) or cand[1].pos[0] == "接頭辞") and gaps[i + 1] == "":
        feats["c_lead_noun_num"] = 1.0  # 年間約9,600件, 延べ1万6,830件
    feats[f"c_lp_{cand[-1].pos[0]}_{cand[-1].pos[1]}"] = 1.0
    if any(g for g in gaps[i + 1:j + 1]):
        feats["c_inner_gap"] = 1.0
    # the kind of answer asked for against the kinds this candidate can be
    for t in types or ("plain",):
        feats[f"t_{qtype}_{t}"] = 1.0
    if q.unit is not None and NUMBER in types:
        su = span_unit(cand)
        if su == q.unit or (su in DURATION_UNITS and q.unit in DURATION_UNITS | {"時間"}):
            feats["c_unit"] = 1.0
        else:
            feats["c_unit_other"] = 1.0
    if head is not None:
        if text.endswith(head.surface) or cand[-1].text == head.text:
            feats["c_head_end"] = 1.0
        elif any(m.text == head.text for m in cand):
            feats["c_head_in"] = 1.0
    if text == p.title:
        feats["c_title"] = 1.0
    elif text in p.title:
        feats["c_in_title"] = 1.0
    feats["c_rel_pos"] = i / n
    return Span(s, i, j, start, end, text, types, feats)


__all__ = ["Passage", "PassageCache", "Sentence", "Span", "Weights", "analyse_passage",
           "coverage", "idf", "match_units", "passage_features", "sentence_features", "span_candidates",
           "weigh_question"]
