"""Paragraph retrieval on JSQuAD dev: our search vs a bm25s baseline, in one run.

    .venv/bin/python -m bench.relevance_jsquad [--limit N] [--skip-baseline]

Each of the 1,145 paragraphs is indexed as an article (title = the part before
" [SEP] "); each of the 4,442 questions goes through kb.search.search, the same
function the API calls. Also reports the judged queries of the sample corpus.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.datasets import REPO_ROOT, load_jsquad
from bench.metrics import mrr_at_k, percentiles, recall_at_k
from kb.corpus import Article, load_sources
from kb.index import OpenIndex, build
from kb.search import search

K = 10


def rank_with_kb(index: OpenIndex, questions: list[dict], k: int = K) -> tuple[list, list]:
    """Return (ranked ids per question, latency ms per question) from our search."""
    ranked, times = [], []
    for q in questions:
        t0 = time.perf_counter()
        res = search(index, q["q"], per_page=k, snippets=False)
        times.append((time.perf_counter() - t0) * 1000)
        ranked.append([h["id"] for h in res["hits"]])
    return ranked, times


def report(name: str, ranked: list, gold: list) -> dict:
    """Print and return R@1/5/10 and MRR@10."""
    row = {"R@1": recall_at_k(ranked, gold, 1), "R@5": recall_at_k(ranked, gold, 5),
           "R@10": recall_at_k(ranked, gold, 10), "MRR@10": mrr_at_k(ranked, gold, 10)}
    print(f"{name:<28} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()))
    return row


def judged_queries(tmp: Path) -> dict | None:
    """nDCG@10 and MRR@10 of the sample corpus's judged queries, if they exist."""
    path = REPO_ROOT / "corpus" / "eval" / "queries.jsonl"
    if not path.is_file():
        print("judged queries: corpus/eval/queries.jsonl not found, skipped")
        return None
    from bench.metrics import ndcg_at_k

    build(load_sources([REPO_ROOT / "corpus"]).articles, tmp / "corpus-index",
          show_progress=False)
    index = OpenIndex(tmp / "corpus-index")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    ranked, _ = rank_with_kb(index, rows)
    gold = [r["relevant"] for r in rows]
    out = {"queries": len(rows), "nDCG@10": ndcg_at_k(ranked, gold, K),
           "MRR@10": mrr_at_k(ranked, gold, K), "R@10": recall_at_k(ranked, gold, K)}
    print(f"judged queries ({len(rows)}):     nDCG@10 {out['nDCG@10']:.3f}  "
          f"MRR@10 {out['MRR@10']:.3f}  R@10 {out['R@10']:.3f}")
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args(argv)

    paragraphs, questions = load_jsquad()
    if args.limit:
        questions = questions[: args.limit]
    gold = [q["paragraph_id"] for q in questions]
    print(f"JSQuAD dev: {len(paragraphs)} paragraphs, {len(questions)} questions")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        articles = [Article(id=p["id"], title=p["title"], body=p["body"]) for p in paragraphs]
        t0 = time.perf_counter()
        build(articles, tmp / "index", show_progress=False)
        build_s = time.perf_counter() - t0
        index = OpenIndex(tmp / "index")
        ranked, times = rank_with_kb(index, questions)
        results["kb"] = report("kb search", ranked, gold)
        lat = percentiles(times)
        print(f"  build {build_s:.2f}s; query p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms")
        results["kb"]["latency_ms"] = lat
        if not args.skip_baseline:
            from bench.baselines import bm25_paragraph_baseline

            t0 = time.perf_counter()
            base = bm25_paragraph_baseline(paragraphs, questions, K)
            results["baseline"] = report("baseline bm25s (k1 1.2 b .75)", base, gold)
            print(f"  baseline time {time.perf_counter() - t0:.1f}s")
            for key in ("R@1", "MRR@10"):
                diff = results["kb"][key] - results["baseline"][key]
                print(f"  {key}: kb - baseline = {diff:+.3f}")
        results["judged"] = judged_queries(tmp)
    return results


if __name__ == "__main__":
    main()
