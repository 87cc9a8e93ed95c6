"""Q&A on JSQuAD dev: our `kb.qa.ask` beside the naive baseline, from one run.

Every paragraph of ../shared/data/jsquad/valid-v1.3.json is indexed as an article
(title = the part before " [SEP] ") and all 4,442 questions are asked through
`kb.qa.ask`. The models are cross-validated over the 59 Wikipedia articles: trained on
one half (bench/qa_train.py's code), scored on the other half, then swapped, so no
figure comes from a model that saw the question's article. Training never touches the
scored half: its unanswerable examples are its own questions asked of its own half
with the question's article left out.

Reported:
  SentHit@1   a gold answer lies inside the returned sentence
  EM, F1      of the returned span (JGLUE normalisation, bench/metrics.py)
  answer rate share of answerable questions answered (confidence >= threshold)
  false-answer rate  the questions asked against an index of the other half of the
              articles, where every answer is false
  latency     per question, `ask` end to end (search included), p50/p99

Usage (from the repository root):
    .venv/bin/python -m bench.qa_jsquad [--workdir DIR] [--limit N]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from bench import baselines, datasets, metrics
from bench.qa_train import build_index, gathered, left_out_runs, split_articles, train
from kb.qa import ask

TARGETS = {"SentHit@1": 0.85, "EM": 0.40, "F1": 0.55}
TARGET_ANSWER_RATE = 0.85
TARGET_FALSE_ANSWER_RATE = 0.10
TARGET_P50_MS = 50.0


def _half(paragraphs: list[dict], titles: set[str]) -> list[dict]:
    return [p for p in paragraphs if p["article_title"] in titles]


def _questions(questions: list[dict], titles: set[str]) -> list[dict]:
    return [q for q in questions if q["article_title"] in titles]


def train_fold(paragraphs: list[dict], questions: list[dict], titles: set[str],
               workdir: Path, name: str) -> dict:
    """Train on one half of the articles only: its questions against its own articles
    (answerable), and each against the half without its own article (unanswerable)."""
    ix_half = build_index(_half(paragraphs, titles), workdir / name)
    qs = _questions(questions, titles)
    pos = gathered(ix_half, qs, f"training questions of half {name} (answerable)")
    neg = left_out_runs(paragraphs, questions, titles, workdir, name)
    return train(pos, qs, [neg])


def ask_all(index, questions: list[dict], model: dict) -> list[dict]:
    """Ask every question (never abstaining, so the threshold can be applied afterwards)."""
    out = []
    for q in questions:
        t0 = time.perf_counter()
        res = ask(index, q["q"], model=model, threshold=0.0)
        ms = (time.perf_counter() - t0) * 1000
        a = res["answer"]
        out.append({"id": q["id"], "answer": a["text"] if a else "",
                    "sentence": a["sentence"] if a else "",
                    "article_id": a["article_id"] if a else None,
                    "confidence": res["confidence"], "threshold": model["threshold"],
                    "ms": ms})
    return out


def score(results: list[dict], questions: list[dict]) -> dict:
    """SentHit@1, EM, F1 of the best answers, answered or not, and with abstentions."""
    n = len(questions)
    hit = em = f1 = answered = hit_answered = em_answered = 0.0
    for r, q in zip(results, questions):
        h = metrics.answer_in_span(r["sentence"], q["answers"]) if r["sentence"] else 0.0
        e = metrics.exact_match(r["answer"], q["answers"]) if r["answer"] else 0.0
        f = metrics.char_f1(r["answer"], q["answers"]) if r["answer"] else 0.0
        hit, em, f1 = hit + h, em + e, f1 + f
        if r["answer"] and r["confidence"] >= r["threshold"]:
            answered += 1
            hit_answered += h
            em_answered += e
    return {"SentHit@1": hit / n, "EM": em / n, "F1": f1 / n, "answer_rate": answered / n,
            "SentHit_answered": hit_answered / max(answered, 1),
            "EM_answered": em_answered / max(answered, 1),
            "SentHit_strict": hit_answered / n}


def calibration(pos: list[dict], pos_questions: list[dict], neg: list[dict],
                bins: int = 5) -> list[tuple[str, int, float, float]]:
    """Mean confidence against the share right, per confidence bin (pooled runs)."""
    points = [(r["confidence"], metrics.answer_in_span(r["sentence"], q["answers"])
               if r["sentence"] else 0.0) for r, q in zip(pos, pos_questions)]
    points += [(r["confidence"], 0.0) for r in neg]
    edges = np.linspace(0, 1, bins + 1)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = [(c, y) for c, y in points if lo <= c < hi or (hi == 1 and c == 1)]
        if inside:
            rows.append((f"{lo:.1f}-{hi:.1f}", len(inside),
                         statistics.fmean(c for c, _ in inside),
                         statistics.fmean(y for _, y in inside)))
    return rows


def naive(paragraphs: list[dict], questions: list[dict]) -> dict:
    """The naive baseline: BM25 paragraph, best idf sentence returned whole as the span."""
    answers = baselines.naive_qa_baseline(paragraphs, questions)
    n = len(questions)
    return {
        "SentHit@1": sum(metrics.answer_in_span(a["answer"], q["answers"])
                         for a, q in zip(answers, questions)) / n,
        "EM": sum(metrics.exact_match(a["answer"], q["answers"])
                  for a, q in zip(answers, questions)) / n,
        "F1": sum(metrics.char_f1(a["answer"], q["answers"])
                  for a, q in zip(answers, questions)) / n,
    }


def main(argv: list[str] | None = None) -> None:
    """Run the cross-validated benchmark and print our figures beside the baseline's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/kb-qa-bench"),
                        help="where the JSQuAD indexes are built (reused when compatible)")
    parser.add_argument("--limit", type=int, default=None,
                        help="ask only every n-th test question (a quick look, not a result)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    paragraphs, questions = datasets.load_jsquad()
    half_a, half_b = split_articles(paragraphs)
    print(f"JSQuAD dev (valid-v1.3): {len(paragraphs)} paragraphs as articles, "
          f"{len(questions)} questions, {len(half_a) + len(half_b)} Wikipedia articles "
          f"split {len(half_a)}/{len(half_b)}", flush=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    full = build_index(paragraphs, args.workdir / "full")
    ix_a = build_index(_half(paragraphs, half_a), args.workdir / "A")
    ix_b = build_index(_half(paragraphs, half_b), args.workdir / "B")

    t0 = time.perf_counter()
    base = naive(paragraphs, questions)
    print(f"  [{time.perf_counter() - t0:6.1f} s] naive baseline", flush=True)

    pos_all, neg_all, qs_all, thresholds = [], [], [], []
    for train_titles, test_titles, name, other_index in (
            (half_a, half_b, "A", ix_a), (half_b, half_a, "B", ix_b)):
        t0 = time.perf_counter()
        model = train_fold(paragraphs, questions, train_titles, args.workdir, name)
        print(f"  [{time.perf_counter() - t0:6.1f} s] trained on half {name} "
              f"(threshold {model['threshold']})", flush=True)
        test = _questions(questions, test_titles)
        if args.limit:
            test = test[::args.limit]
        t0 = time.perf_counter()
        pos = ask_all(full, test, model)
        neg = ask_all(other_index, test, model)
        print(f"  [{time.perf_counter() - t0:6.1f} s] asked {len(test)} held-out questions "
              f"twice (all articles; only half {name}'s)", flush=True)
        pos_all += pos
        neg_all += neg
        qs_all += test
        thresholds.append(model["threshold"])

    ours = score(pos_all, qs_all)
    false_rate = sum(1 for r in neg_all if r["answer"] and r["confidence"] >= r["threshold"]) \
        / len(neg_all)
    ms = [r["ms"] for r in pos_all]
    lat = metrics.percentiles(ms)
    print()
    print(f"{'':28}{'kb.qa (2-fold CV)':>18}{'naive baseline':>16}{'target':>10}")
    for key in ("SentHit@1", "EM", "F1"):
        print(f"{key:28}{ours[key]:>18.3f}{base[key]:>16.3f}{'>= ' + str(TARGETS[key]):>10}")
    print(f"{'answer rate (answerable)':28}{ours['answer_rate']:>18.3f}{'1.000':>16}"
          f"{'>= ' + str(TARGET_ANSWER_RATE):>10}")
    print(f"{'false-answer rate (disjoint)':28}{false_rate:>18.3f}{'1.000':>16}"
          f"{'<= ' + str(TARGET_FALSE_ANSWER_RATE):>10}")
    print(f"{'latency p50 / p99 (ms)':28}{lat['p50']:>10.1f} / {lat['p99']:<5.0f}{'':>16}"
          f"{'<= ' + str(TARGET_P50_MS):>10}")
    print()
    print(f"  questions asked: {len(qs_all)} against all articles, {len(neg_all)} against the "
          f"other half; thresholds {', '.join(f'{t:.3f}' for t in thresholds)}")
    print(f"  answered only: SentHit@1 {ours['SentHit_answered']:.3f}  EM "
          f"{ours['EM_answered']:.3f}; abstentions counted as misses: SentHit@1 "
          f"{ours['SentHit_strict']:.3f}")
    print("  calibration (answerable + disjoint runs pooled): confidence bin, n, "
          "mean confidence, share whose sentence holds the answer")
    for label, n, conf, right in calibration(pos_all, qs_all, neg_all):
        print(f"    {label}  {n:>5}  {conf:.3f}  {right:.3f}")
    print("  other thresholds: threshold, answer rate (answerable), false-answer rate (disjoint)")
    for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
        ans = sum(1 for r in pos_all if r["answer"] and r["confidence"] >= t) / len(pos_all)
        far = sum(1 for r in neg_all if r["answer"] and r["confidence"] >= t) / len(neg_all)
        print(f"    {t:.1f}  {ans:.3f}  {far:.3f}")
    dump = args.workdir / "qa_results.json"
    dump.write_text(json.dumps({"answerable": pos_all, "disjoint": neg_all,
                                "questions": [q["id"] for q in qs_all]}, ensure_ascii=False),
                    encoding="utf-8")
    print(f"  per-question results: {dump}")
    print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
