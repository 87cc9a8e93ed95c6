"""Paragraph retrieval on JSQuAD dev: our search vs a bm25s baseline, in one run.

    .venv/bin/python -m bench.relevance_jsquad [--limit N] [--skip-baseline]

Each of the 1,145 paragraphs is indexed as an article (title = the part before
" [SEP] "); each of the 4,442 questions goes through kb.search.search, the same
function the API calls. Also reports the judged queries of the sample corpus, without
and with the synonym list (synonyms.txt), as the product runs them.

Latency is per search call: wall-clock, and CPU time of this process (the same figure
on a busy machine, where wall-clock also counts waiting for a core).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.datasets import REPO_ROOT, load_jsquad
from bench.metrics import mrr_at_k, ndcg_at_k, percentiles, recall_at_k
from kb.corpus import Article, load_sources
from kb.index import OpenIndex, build
from kb.search import search

K = 10


SYNONYMS = REPO_ROOT / "synonyms.txt"


def rank_with_kb(index: OpenIndex, questions: list[dict], k: int = K, synonyms=None
                 ) -> tuple[list, list, list]:
    """Return (ranked ids, wall ms, CPU ms) per question from our search."""
    ranked, wall, cpu = [], [], []
    for q in questions:
        t0, c0 = time.perf_counter(), time.process_time()
        res = search(index, q["q"], per_page=k, snippets=False, synonyms=synonyms)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        ranked.append([h["id"] for h in res["hits"]])
    return ranked, wall, cpu


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
    build(load_sources([REPO_ROOT / "corpus"]).articles, tmp / "corpus-index",
          show_progress=False)
    index = OpenIndex(tmp / "corpus-index")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    gold = [r["relevant"] for r in rows]
    out = {"queries": len(rows)}
    for label, synonyms in (("no synonyms", None), ("synonyms.txt", SYNONYMS)):
        if synonyms is not None and not synonyms.is_file():
            continue
        ranked, _, _ = rank_with_kb(index, rows, synonyms=synonyms)
        row = out[label] = {"nDCG@10": ndcg_at_k(ranked, gold, K),
                            "MRR@10": mrr_at_k(ranked, gold, K), "R@10": recall_at_k(ranked, gold, K)}
        print(f"judged queries ({len(rows)}, {label}): nDCG@10 {row['nDCG@10']:.3f}  "
              f"MRR@10 {row['MRR@10']:.3f}  R@10 {row['R@10']:.3f}")
    index.close()
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
        ranked, wall, cpu = rank_with_kb(index, questions)
        index.close()
        results["kb"] = report("kb search", ranked, gold)
        lat, lat_cpu = percentiles(wall), percentiles(cpu)
        print(f"  build {build_s:.2f}s; query p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms "
              f"(CPU p50 {lat_cpu['p50']:.1f} ms, p99 {lat_cpu['p99']:.1f} ms)")
        results["kb"]["latency_ms"] = lat
        results["kb"]["cpu_ms"] = lat_cpu
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
