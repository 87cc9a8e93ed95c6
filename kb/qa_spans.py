"""Answer candidates: the spans of a sentence that could answer a question, with features.

A span runs over whole Sudachi C units (kb.analysis) and keeps numbers with their unit
(1,340件), era dates whole (令和5年10月) and company names with their legal form
(株式会社あおしおビジネスサービス); its features say how it sits against the question:
its kind against the kind asked for, the question's words around it on the side they
stand on in the question, the particles next to it, and whether it repeats the question.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .analysis import Morph
from .answer_types import (DATE, DURATION_UNITS, ERAS, LEGAL_FORMS, MONEY, NUMBER, ORGANIZATION,
                           PERSON, PROPER, QUANTITY, Question, is_counter, is_number,
                           span_types, span_unit)
from .qa_features import Passage, Sentence, Weights

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
