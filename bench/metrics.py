"""Retrieval, related-article and extractive-QA metrics shared by every benchmark."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Sequence

import numpy as np

_WHITESPACE = re.compile(r"\s+")


def _as_gold(gold: str | Collection[str]) -> set[str]:
    """Accept one gold id or a collection of them."""
    return {gold} if isinstance(gold, str) else set(gold)


def recall_at_k(
    ranked: Sequence[Sequence[str]], gold: Sequence[str | Collection[str]], k: int
) -> float:
    """Mean share of each query's gold ids found in its top k."""
    if not ranked:
        return 0.0
    total = 0.0
    for ids, g in zip(ranked, gold, strict=True):
        wanted = _as_gold(g)
        total += len(wanted.intersection(ids[:k])) / len(wanted)
    return total / len(ranked)


def mrr_at_k(
    ranked: Sequence[Sequence[str]], gold: Sequence[str | Collection[str]], k: int
) -> float:
    """Mean reciprocal rank of the first gold id within the top k (0 when absent)."""
    if not ranked:
        return 0.0
    total = 0.0
    for ids, g in zip(ranked, gold, strict=True):
        wanted = _as_gold(g)
        for rank, doc_id in enumerate(ids[:k], start=1):
            if doc_id in wanted:
                total += 1.0 / rank
                break
    return total / len(ranked)


def ndcg_at_k(
    ranked: Sequence[Sequence[str]], gold: Sequence[str | Collection[str]], k: int
) -> float:
    """Mean nDCG@k with binary gains (1 for a relevant id); the ideal ranks every gold id first."""
    if not ranked:
        return 0.0
    total = 0.0
    for ids, g in zip(ranked, gold, strict=True):
        wanted = _as_gold(g)
        dcg = sum(1.0 / np.log2(rank + 1)
                  for rank, doc_id in enumerate(ids[:k], start=1) if doc_id in wanted)
        ideal = sum(1.0 / np.log2(rank + 1) for rank in range(1, min(len(wanted), k) + 1))
        total += dcg / ideal if ideal else 0.0
    return total / len(ranked)


def category_precision_at_k(
    neighbours: Sequence[Sequence[str]],
    source_ids: Sequence[str],
    category_of: dict[str, str],
    k: int,
) -> float:
    """Mean share of each item's top-k neighbours that share its category.

    A list shorter than k counts its missing places as misses.
    """
    if not neighbours:
        return 0.0
    total = 0.0
    for ids, source in zip(neighbours, source_ids, strict=True):
        category = category_of[source]
        total += sum(category_of[n] == category for n in ids[:k]) / k
    return total / len(neighbours)


def normalize_answer(text: str) -> str:
    """Normalise a Japanese answer: lower-case, collapse whitespace, drop a trailing 。."""
    text = _WHITESPACE.sub(" ", text.lower()).strip()
    return text.removesuffix("。").rstrip()


def _answer_chars(text: str) -> list[str]:
    # Characters are JGLUE's unit for Japanese; spaces carry no content, as in SQuAD.
    return [c for c in normalize_answer(text) if not c.isspace()]


def exact_match(prediction: str, answers: Iterable[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(a) for a in answers))


def char_f1(prediction: str, answers: Iterable[str]) -> float:
    """Best character-level F1 of the prediction against the gold answers."""
    pred = Counter(_answer_chars(prediction))
    best = 0.0
    for answer in answers:
        gold = Counter(_answer_chars(answer))
        common = sum((pred & gold).values())
        if common == 0:
            continue
        precision = common / sum(pred.values())
        recall = common / sum(gold.values())
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def answer_in_span(span: str, answers: Iterable[str]) -> float:
    """1.0 if any normalised gold answer lies inside the normalised span, else 0.0."""
    text = normalize_answer(span)
    return float(any(normalize_answer(a) in text for a in answers if normalize_answer(a)))


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 99)) -> dict[str, float]:
    """Return {"p50": ..., "p99": ...} (linear interpolation; NaN when there are no values)."""
    if len(values) == 0:
        return {f"p{q:g}": float("nan") for q in qs}
    result = np.percentile(np.asarray(values, dtype=float), list(qs))
    return {f"p{q:g}": float(v) for q, v in zip(qs, result)}
