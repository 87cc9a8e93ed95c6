"""Run the reference baselines on JSQuAD dev and livedoor and print their figures with timings.

Usage (from the repository root):
    .venv/bin/python -m bench.run_baselines [--variants] [--only jsquad|livedoor]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from typing import TypeVar

from bench import baselines, datasets, metrics

T = TypeVar("T")

BM25_METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")


def timed(label: str, fn: Callable[[], T]) -> T:
    """Run fn, print how long it took, and return its result."""
    start = time.perf_counter()
    result = fn()
    print(f"  [{time.perf_counter() - start:6.2f} s] {label}")
    return result


def report_retrieval(name: str, ranked: list[list[str]], questions: list[dict]) -> None:
    """Print R@1, R@10 and MRR@10 for ranked paragraph ids."""
    gold = [q["paragraph_id"] for q in questions]
    print(
        f"  {name}: R@1 {metrics.recall_at_k(ranked, gold, 1):.3f}"
        f"  R@10 {metrics.recall_at_k(ranked, gold, 10):.3f}"
        f"  MRR@10 {metrics.mrr_at_k(ranked, gold, 10):.3f}"
    )


def report_qa(name: str, answers: list[dict], questions: list[dict]) -> None:
    """Print SentHit@1, EM and char-F1 for the naive Q&A answers."""
    n = len(questions)
    hit = sum(metrics.answer_in_span(a["answer"], q["answers"]) for a, q in zip(answers, questions))
    em = sum(metrics.exact_match(a["answer"], q["answers"]) for a, q in zip(answers, questions))
    f1 = sum(metrics.char_f1(a["answer"], q["answers"]) for a, q in zip(answers, questions))
    # A gold string can also turn up by chance in a sentence of the wrong paragraph.
    in_gold = sum(
        metrics.answer_in_span(a["answer"], q["answers"])
        for a, q in zip(answers, questions)
        if a["paragraph_id"] == q["paragraph_id"]
    )
    print(
        f"  {name}: SentHit@1 {hit / n:.3f} (from the gold paragraph {in_gold / n:.3f})"
        f"  EM {em / n:.3f}  char-F1 {f1 / n:.3f}"
    )


def report_related(name: str, neighbours: list[list[str]], articles: list[dict]) -> None:
    """Print category agreement P@5 and P@10 of the neighbours."""
    ids = [a["id"] for a in articles]
    category_of = {a["id"]: a["category"] for a in articles}
    print(
        f"  {name}: P@5 {metrics.category_precision_at_k(neighbours, ids, category_of, 5):.3f}"
        f"  P@10 {metrics.category_precision_at_k(neighbours, ids, category_of, 10):.3f}"
    )


def run_jsquad(variants: bool) -> None:
    """Paragraph retrieval and naive Q&A on JSQuAD dev."""
    print("JSQuAD dev (valid-v1.3)")
    paragraphs, questions = timed("load", datasets.load_jsquad)
    print(f"  {len(paragraphs)} paragraphs, {len(questions)} questions")
    timed("open Sudachi dictionary", baselines.terms)
    ranked = timed(
        "a. BM25 paragraph retrieval (title+body, lucene), tokenising included",
        lambda: baselines.bm25_paragraph_baseline(paragraphs, questions, k=10),
    )
    report_retrieval("title+body, lucene", ranked, questions)
    if variants:
        for with_title in (True, False):
            for method in BM25_METHODS:
                label = f"{'title+body' if with_title else 'body'}, {method}"
                if with_title and method == "lucene":
                    continue
                ranked = timed(
                    label,
                    lambda: baselines.bm25_paragraph_baseline(
                        paragraphs, questions, k=10, with_title=with_title, method=method
                    ),
                )
                report_retrieval(label, ranked, questions)
    answers = timed(
        "c. naive Q&A (BM25 top paragraph, best idf sentence)",
        lambda: baselines.naive_qa_baseline(paragraphs, questions),
    )
    report_qa("title+body retrieval", answers, questions)
    if variants:
        answers = timed(
            "c. naive Q&A, body-only retrieval",
            lambda: baselines.naive_qa_baseline(paragraphs, questions, with_title=False),
        )
        report_qa("body retrieval", answers, questions)


def run_livedoor(variants: bool) -> None:
    """Related articles by TF-IDF on the livedoor corpus."""
    print("livedoor news corpus")
    with tempfile.TemporaryDirectory(prefix="ldcc-") as tmp:
        articles = timed("unpack and read", lambda: datasets.unpack_livedoor(tmp))
    categories = len({a["category"] for a in articles})
    print(f"  {len(articles)} articles in {categories} categories")
    neighbours = timed(
        "b. TF-IDF related (title+body), tokenising included",
        lambda: baselines.tfidf_related_baseline(articles, k=10),
    )
    report_related("title+body", neighbours, articles)
    if variants:
        neighbours = timed(
            "b. TF-IDF related (body)",
            lambda: baselines.tfidf_related_baseline(articles, k=10, with_title=False),
        )
        report_related("body", neighbours, articles)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run the chosen baselines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variants",
        action="store_true",
        help="also run body-only text and the other bm25s methods, to see which settings match",
    )
    parser.add_argument("--only", choices=("jsquad", "livedoor"), help="run one data set only")
    args = parser.parse_args(argv)
    # Check for ../shared before spending time on anything else.
    datasets.require_shared(datasets.JSQUAD_DEV)
    datasets.require_shared(datasets.LIVEDOOR_TARBALL)
    start = time.perf_counter()
    if args.only in (None, "jsquad"):
        run_jsquad(args.variants)
    if args.only in (None, "livedoor"):
        run_livedoor(args.variants)
    print(f"total {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
