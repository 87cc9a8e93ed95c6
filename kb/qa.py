"""A question in, a short answer with its source sentence and article out (or an honest none).

`ask` reads the question (kb.answer_types), retrieves articles through `kb.search.search`
(the same path as the search page), ranks their sentences, extracts answer spans from
the best ones (kb.qa_features), picks the answer, and scores it with a calibrated
confidence; below the threshold it abstains. The models (logistic regressions for
sentences, spans and confidence, a small tree ensemble for the final choice) are plain
literals in kb/qa_weights.py, written by bench/qa_train.py from JSQuAD dev data.
"""
from __future__ import annotations

import dataclasses
import math
import time
import unicodedata
from dataclasses import dataclass

from .answer_types import Question, read_question
from .errors import BadQuery
from .index import OpenIndex
from .qa_features import (Passage, PassageCache, Sentence, Weights, coverage, match_units,
                          passage_features, sentence_features, weigh_question)
from .qa_model import dot, forest, sigmoid
from .qa_spans import Span, expected, span_candidates
from .search import MAX_QUERY_CHARS, search

PASSAGES = 5  # articles read per question
SENTENCES = 5  # best sentences searched for an answer span
OTHER_CANDIDATES = 3  # further sentences shown beside the answer
# Added to the span logit of a candidate of the kind asked for (a sum for いくら): JSQuAD
# has too few such questions for the span model to learn how much that matters.
TYPE_BONUS = 3.0
_cache = PassageCache()


# --- models -----------------------------------------------------------------------------


def _weights() -> dict:
    from .qa_weights import WEIGHTS

    return WEIGHTS


# --- retrieval --------------------------------------------------------------------------


def check_question(text) -> str:
    """Return the question cleaned up, or raise BadQuery."""
    if text is None or (isinstance(text, str) and not text.strip()):
        raise BadQuery("質問を入力してください。")
    if not isinstance(text, str):
        raise BadQuery("質問は文字列で指定してください。")
    if len(text) > MAX_QUERY_CHARS:
        raise BadQuery(f"質問が長すぎます（{len(text):,}文字）。"
                       f"{MAX_QUERY_CHARS:,}文字以内にしてください。")
    return unicodedata.normalize("NFC", text.replace("\x00", " ")).strip()


def retrieve(index: OpenIndex, text: str, limit: int = PASSAGES
             ) -> tuple[list[Passage], list[dict]]:
    """Return the analysed top articles for a question, and the search hits themselves."""
    try:
        hits = search(index, text, per_page=limit, snippets=False)["hits"]
    except BadQuery:
        return [], []  # a question of symbols only: nothing to look for
    generation = str(getattr(index, "generation_path", ""))
    passages = []
    for rank, hit in enumerate(hits):
        doc = index.get_article(hit["id"])
        p = _cache.get((generation, hit["id"]), hit["id"], doc.get("title", ""),
                       doc.get("body", ""))
        # the cached analysis is shared: rank and score belong to this question only
        p = dataclasses.replace(p, rank=rank, score=float(hit["score"]))
        passages.append(p)
    return passages, hits


def question_weights(index: OpenIndex, q: Question) -> Weights:
    """Weight the question's words by idf over the index."""
    searcher = index.searcher()
    n_docs = max(searcher.doc_count(), 1)

    def doc_frequency(term: str) -> int:
        return searcher.doc_frequency("body", term)

    return weigh_question(q, doc_frequency, n_docs)


@dataclass
class Candidates:
    """Everything `ask` weighs for one question (the training script reads it too)."""

    question: Question
    weights: Weights
    passages: list[Passage]
    hits: list[dict]
    sentences: list[tuple[Passage, Sentence, list, dict]]  # (passage, sentence, matches, feats)


def gather(index: OpenIndex, text: str, limit: int = PASSAGES,
           retrieved: tuple[list[Passage], list[dict]] | None = None) -> Candidates:
    """Read the question, retrieve articles, and compute every sentence's features."""
    q = read_question(text)
    wts = question_weights(index, q)
    passages, hits = retrieved if retrieved is not None else retrieve(index, text, limit)
    top = passages[0].score if passages else 0.0
    rows = []
    for p in passages:
        mine = []
        for s in p.sentences:
            matches = match_units(q, wts, s)
            mine.append((p, s, matches, sentence_features(q, wts, p, s, matches, top)))
        passage_features(q, wts, p, [r[3] for r in mine])
        rows.extend(mine)
    return Candidates(q, wts, passages, hits, rows)


# --- answering --------------------------------------------------------------------------


def confidence_features(c: Candidates, best: dict, runner_up: dict | None) -> dict:
    """Features of the winning answer that tell a found answer from a guess."""
    p = best["passage"]
    q, wts = c.question, c.weights
    return {
        "bias": 1.0,
        "k_joint": best["joint"],
        "k_sent": best["sent_logit"],
        "k_span": best["span_logit"],
        "k_margin": best["joint"] - runner_up["joint"] if runner_up else 5.0,
        "k_cov": best["sent_feats"]["s_cov"],
        "k_cov_st": best["sent_feats"]["s_cov_st"],
        "k_cov_art": coverage(q, wts, p.terms),
        "k_unseen": wts.unseen,
        "k_nterms": math.log1p(len(wts.units)),
        "k_rank0": 1.0 if p.rank == 0 else 0.0,
        f"k_type_{q.answer_type}": 1.0,
    }


def joint_features(sent_logit: float, spans: list[Span], feats: dict, rank: int) -> dict:
    """Features of a sentence with its best span: is this where the answer is?

    The joint model sees the sentence's own features and its best span's too, so it
    can tell a sentence that restates the question from one that answers it.
    """
    best = spans[0]
    second = spans[1].score if len(spans) > 1 else best.score - 5.0
    out = {"bias": 1.0, "j_sent": sent_logit, "j_span": best.score,
           "j_gap": best.score - second, f"j_rank{min(rank, 3)}": 1.0,
           "j_spans": math.log1p(len(spans))}
    out.update({k: v for k, v in feats.items() if k != "bias"})
    out.update({"sp_" + k: v for k, v in best.features.items() if k != "bias"})
    return out


def joint_scores(model: dict, rows: list[dict]) -> list[float]:
    """Score answer options with the joint model (a tree ensemble or linear weights)."""
    spec = model["joint"]
    if "trees" in spec:
        return [float(v) for v in forest(spec).decision(rows)]
    return [dot(spec, r) for r in rows]


def rank_answers(c: Candidates, model: dict, sentences: int = SENTENCES
                 ) -> tuple[list[dict], list]:
    """Score sentences, then spans in the best ones; one answer per sentence, best first."""
    scored = []
    for p, s, matches, feats in c.sentences:
        scored.append((dot(model["sentence"], feats), p, s, matches, feats))
    scored.sort(key=lambda r: -r[0])
    answers = []
    for rank, (sent_logit, p, s, matches, feats) in enumerate(scored[:sentences]):
        spans = span_candidates(c.question, c.weights, p, s, matches)
        if not spans:
            continue
        for sp in spans:
            sp.score = dot(model["span"], sp.features)
            if expected(c.question, sp):
                sp.score += TYPE_BONUS
        spans.sort(key=lambda sp: -sp.score)
        answers.append({"passage": p, "sentence": s, "span": spans[0], "spans": spans[:3],
                        "sent_logit": sent_logit, "span_logit": spans[0].score,
                        "sent_feats": feats,
                        "joint_feats": joint_features(sent_logit, spans, feats, rank)})
    for a, score in zip(answers, joint_scores(model, [a["joint_feats"] for a in answers])):
        a["joint"] = score
    answers.sort(key=lambda a: -a["joint"])
    return answers, scored


def ask(index: OpenIndex, text: str, *, threshold: float | None = None,
        limit: int = PASSAGES, model: dict | None = None) -> dict:
    """Answer a Japanese question from the index, or abstain; plain data for every surface."""
    started = time.perf_counter()
    text = check_question(text)
    model = model or _weights()
    if threshold is None:
        threshold = model["threshold"]
    c = gather(index, text, limit)
    answers, scored = rank_answers(c, model)
    best = answers[0] if answers else None
    runner = next((a for a in answers[1:] if a["span"].text != best["span"].text), None) \
        if best else None
    confidence = 0.0
    if best is not None:
        confidence = sigmoid(dot(model["confidence"], confidence_features(c, best, runner)))
    answered = best is not None and confidence >= threshold
    return {
        "question": text,
        "analysis": c.question.describe(),
        "answered": answered,
        "answer": _answer_data(best, confidence) if answered else None,
        "confidence": round(confidence, 4),
        "threshold": threshold,
        "candidates": _other_sentences(scored, best, answers),
        "hits": [{"id": h["id"], "title": h["title"], "score": h["score"]} for h in c.hits],
        "took_ms": round((time.perf_counter() - started) * 1000, 1),
    }


def segments(sentence: str, start: int, end: int) -> list[dict]:
    """Cut a sentence into plain-text pieces, marking the answer (templates escape each)."""
    out = []
    if start > 0:
        out.append({"text": sentence[:start], "answer": False})
    out.append({"text": sentence[start:end], "answer": True})
    if end < len(sentence):
        out.append({"text": sentence[end:], "answer": False})
    return out


def _answer_data(best: dict, confidence: float) -> dict:
    p, s, sp = best["passage"], best["sentence"], best["span"]
    sentence = p.body[s.start:s.end]
    return {
        "text": sp.text,
        "start": sp.start,
        "end": sp.end,
        "sentence": sentence,
        "sentence_start": s.start,
        "sentence_end": s.end,
        "segments": segments(sentence, sp.start - s.start, sp.end - s.start),
        "article_id": p.id,
        "title": p.title,
        "types": sorted(sp.types),
        "confidence": round(confidence, 4),
    }


def _other_sentences(scored: list, best: dict | None, answers: list[dict]) -> list[dict]:
    """Further candidate sentences (not the answer's), with their best span if any."""
    by_sentence = {}
    for a in answers:
        key = (a["passage"].id, a["sentence"].start)
        by_sentence.setdefault(key, a)
    out = []
    for logit, p, s, _, _ in scored:
        if best is not None and (p.id, s.start) == (best["passage"].id, best["sentence"].start):
            continue
        sentence = p.body[s.start:s.end]
        a = by_sentence.get((p.id, s.start))
        item = {"sentence": sentence, "article_id": p.id, "title": p.title,
                "sentence_start": s.start, "score": round(sigmoid(logit), 4),
                "answer": a["span"].text if a else None,
                "segments": (segments(sentence, a["span"].start - s.start,
                                      a["span"].end - s.start) if a
                             else [{"text": sentence, "answer": False}])}
        out.append(item)
        if len(out) >= OTHER_CANDIDATES:
            break
    return out


def batch_answer(index: OpenIndex, question) -> dict:
    """One line of `kb ask --batch`: the answer, its sentence and article, or nulls."""
    if not isinstance(question, str):
        raise BadQuery("'q' must be a string")
    res = ask(index, question)
    a = res["answer"]
    return {"answer": a["text"] if a else None, "sentence": a["sentence"] if a else None,
            "article_id": a["article_id"] if a else None, "score": res["confidence"]}
