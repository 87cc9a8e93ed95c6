"""Related articles on livedoor: our index + model (through kb.index.build) beside the baseline.

A suggestion is counted right when it shares the article's category (9 categories,
7,367 articles): P@5 and P@10 over every article. Also reported: the speed of the
two lookups, the model's size on disk and in memory, and what part of the whole
index build the model takes. `--variants` refits the model with one setting changed
at a time and prints what each did.

Usage (from the repository root):
    .venv/bin/python -m bench.related_livedoor [--variants] [--procs N]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import multiprocessing as mp
import os
import random
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from bench import baselines, datasets, metrics
from kb import related
from kb.analysis import analyze
from kb.corpus import Article
from kb.index import build

TARGET_P5 = 0.88
ARTICLE_MS = 2.0  # neighbours of a stored article
TEXT_MS = 50.0  # free text of TEXT_CHARS characters
TEXT_CHARS = 2000


def to_articles(items: list[dict]) -> list[Article]:
    """Livedoor records as kb Articles: title and body only (the category stays out)."""
    out = []
    for a in items:
        try:
            date = dt.date.fromisoformat(a["date"][:10]).isoformat()
        except ValueError:
            date = None
        out.append(Article(id=a["id"], title=a["title"] or a["id"], body=a["body"] or a["title"],
                           date=date))
    return out


def precision(neighbours: list[list[str]], items: list[dict]) -> tuple[float, float]:
    """Category P@5 and P@10 of neighbour id lists aligned with items."""
    ids = [a["id"] for a in items]
    category_of = {a["id"]: a["category"] for a in items}
    return tuple(metrics.category_precision_at_k(neighbours, ids, category_of, k)
                 for k in (5, 10))


def model_neighbours(model: related.RelatedModel, k: int = 10) -> list[list[str]]:
    """Every article's stored top-k neighbours, as ids."""
    nb = model.arrays["nb_idx"][:, :k]
    return [[model.ids[j] for j in row if j >= 0] for row in nb]


def timings(fn, inputs) -> tuple[dict[str, float], dict[str, float]]:
    """Milliseconds per call (p50, p99, max): wall clock, and this thread's CPU time.

    On a shared machine the wall clock also counts time the process spent waiting
    for a core; the CPU time does not.
    """
    wall, cpu = [], []
    for x in inputs:
        c0, t0 = time.thread_time(), time.perf_counter()
        fn(x)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
    out = []
    for ms in (wall, cpu):
        stats = metrics.percentiles(ms, (50, 99))
        stats["max"] = max(ms)
        out.append(stats)
    return out[0], out[1]


def free_texts(items: list[dict], n: int, seed: int = 0) -> list[str]:
    """n texts of exactly TEXT_CHARS characters, each from one article (repeated if short)."""
    rng = random.Random(seed)
    texts = []
    for a in rng.sample(items, n):
        text = f"{a['title']}\n{a['body']}"
        texts.append((text * (TEXT_CHARS // max(len(text), 1) + 1))[:TEXT_CHARS])
    return texts


def file_bytes(folder: Path) -> int:
    """Bytes of the related model's files in a generation folder."""
    return sum((folder / name).stat().st_size for name in (related.INFO_FILE, related.ARRAYS_FILE))


def mb(n: float) -> str:
    """Megabytes, for humans."""
    return f"{n / 1e6:.1f} MB"


# --- the variants table -----------------------------------------------------------------


def _variant_terms(job: tuple[str, str]) -> dict[str, related.ArticleTerms]:
    """Analyse one article and select its terms under each extraction setting."""
    title, body = job
    tm, bm = analyze(title), analyze(body)
    return {name: related.extract(tm, bm, s) for name, s in EXTRACTIONS.items()}


D = related.DEFAULT_SETTINGS
EXTRACTIONS = {
    "default": D,
    "all": dataclasses.replace(D, pos="all"),
    "nouns": dataclasses.replace(D, pos="nouns"),
    "sub": dataclasses.replace(D, sub_units=True),
}
NO_LSA = 10**9  # lsa_min_articles that switches LSA off
VARIANTS: list[tuple[str, str, related.Settings | str]] = [
    ("ours: content words, C units, title x2, sublinear TF-IDF, LSA 100, alpha 0.5",
     "default", D),
    ("kb terms with the baseline's settings (all POS, title x1, min_df=2, no LSA)", "all",
     dataclasses.replace(D, pos="all", title_weight=1, min_df=2, lsa_min_articles=NO_LSA)),
    ("TF-IDF only (no LSA)", "default", dataclasses.replace(D, lsa_min_articles=NO_LSA)),
    ("all kept POS instead of content words", "all", dataclasses.replace(D, pos="all")),
    ("nouns only", "nouns", dataclasses.replace(D, pos="nouns")),
    ("+ A sub-units of compounds", "sub", dataclasses.replace(D, sub_units=True)),
    ("title x1", "default", dataclasses.replace(D, title_weight=1)),
    ("title x3", "default", dataclasses.replace(D, title_weight=3)),
    ("raw tf (sublinear_tf off)", "default", dataclasses.replace(D, sublinear_tf=False)),
    ("min_df=2", "default", dataclasses.replace(D, min_df=2)),
    ("max_df=1.0 (none)", "default", dataclasses.replace(D, max_df=1.0)),
    ("max_df=0.2", "default", dataclasses.replace(D, max_df=0.2)),
    ("LSA 50 dims", "default", dataclasses.replace(D, lsa_dims=50)),
    ("LSA 200 dims", "default", dataclasses.replace(D, lsa_dims=200)),
    ("alpha 0 (LSA cosine only)", "default", dataclasses.replace(D, alpha=0.0)),
    ("alpha 0.3", "default", dataclasses.replace(D, alpha=0.3)),
    ("alpha 0.7", "default", dataclasses.replace(D, alpha=0.7)),
    ("BM25 weights (k1 1.2, b 0.75) instead of TF-IDF, + LSA", "default", "bm25"),
    ("BM25 weights, no LSA", "default", "bm25-nolsa"),
]


def bm25_model(ids, titles, docs, settings, k1: float = 1.2, b: float = 0.75):
    """The model with BM25-saturated, BM25-idf weighted rows instead of TF-IDF."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.preprocessing import normalize

    lists = [related._doc_terms(d, settings) for d in docs]
    cv = CountVectorizer(analyzer=related._as_is, max_df=settings.max_df, dtype=np.float32)
    counts = sp.csr_matrix(cv.fit_transform(lists), dtype=np.float32)
    n = counts.shape[0]
    length = np.asarray(counts.sum(axis=1)).ravel()
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
    rows = np.repeat(np.arange(n), np.diff(counts.indptr))
    tf = counts.data
    counts.data = (tf * (k1 + 1) / (tf + k1 * (1 - b + b * length[rows] / length.mean()))
                   * idf[counts.indices]).astype(np.float32)
    vocab = cv.get_feature_names_out().tolist()
    return related.from_matrix(ids, titles, normalize(counts), vocab, idf,
                               related._corpus_display(docs, vocab), settings)


def run_variants(items: list[dict], articles: list[Article], procs: int) -> None:
    """Refit with one change at a time; print P@5/P@10 of each."""
    print("\nvariants (same articles, analysed again with kb.analysis; each row changes one thing)")
    t0 = time.perf_counter()
    jobs = [(a.title, a.body) for a in articles]
    with mp.get_context("fork").Pool(procs) as pool:
        per_article = pool.map(_variant_terms, jobs, chunksize=32)
    print(f"  [{time.perf_counter() - t0:6.1f} s] analysis")
    ids, titles = [a.id for a in articles], [a.title for a in articles]
    print(f"  {'variant':<82} {'P@5':>6} {'P@10':>6} {'fit s':>6}")
    for name, extraction, settings in VARIANTS:
        docs = [terms[extraction] for terms in per_article]
        t0 = time.perf_counter()
        if settings == "bm25":
            model = bm25_model(ids, titles, docs, D)
        elif settings == "bm25-nolsa":
            model = bm25_model(ids, titles, docs, dataclasses.replace(D, lsa_min_articles=NO_LSA))
        else:
            model = related.fit(ids, titles, docs, settings)
        seconds = time.perf_counter() - t0
        p5, p10 = precision(model_neighbours(model), items)
        print(f"  {name:<82} {p5:6.3f} {p10:6.3f} {seconds:6.1f}", flush=True)


# --- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Build, measure, compare, and optionally run the variants."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", action="store_true",
                        help="also refit with one change at a time")
    parser.add_argument("--procs", type=int, default=2, help="tokeniser processes for the build")
    args = parser.parse_args(argv)
    datasets.require_shared(datasets.LIVEDOOR_TARBALL)
    started = time.perf_counter()

    print("livedoor news corpus: related articles")
    with tempfile.TemporaryDirectory(prefix="ldcc-") as tmp:
        items = datasets.unpack_livedoor(Path(tmp) / "ldcc")
        articles = to_articles(items)
        print(f"  {len(items)} articles in {len({a['category'] for a in items})} categories")

        index_dir = Path(tmp) / "index"
        stats = build(articles, index_dir, procs=args.procs, show_progress=False,
                      features=related.features, after_write=related.after_write)
        print(f"  [{stats.seconds:6.1f} s] kb.index.build (Whoosh + related model), "
              f"{args.procs} processes")
        print(f"  [{stats.related_seconds:6.1f} s] of which the related model "
              f"({stats.related_seconds / stats.seconds:.1%} of the build)")

        gen = index_dir / stats.generation
        tracemalloc.start()
        t0 = time.perf_counter()
        model = related.open_model(index_dir)
        load_s = time.perf_counter() - t0
        in_memory = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        on_disk = file_bytes(gen)
        print(f"  model: {model.describe()}")
        print(f"  model size on disk {mb(on_disk)} (related.npz + related.json), "
              f"in memory {mb(in_memory)} (arrays {mb(model.nbytes())}), "
              f"load {load_s * 1000:.0f} ms")

    ours = precision([[r["id"] for r in model.for_article(a.id, 10)["related"]]
                      for a in articles], items)
    t0 = time.perf_counter()
    base = precision(baselines.tfidf_related_baseline(items, k=10), items)
    base_s = time.perf_counter() - t0

    analyze("準備")  # open the dictionary before timing
    sample = random.Random(1).sample([a.id for a in articles], 2000)
    art_ms = timings(lambda i: model.for_article(i, 10), sample)
    texts = free_texts(items, 200)
    for text in texts[:5]:
        model.for_text(text, 10)  # warm the word cache as a running server would be
    text_ms = timings(lambda t: model.for_text(t, 10), texts)

    print("\n  method                                                   P@5    P@10")
    print(f"  baseline: TF-IDF cosine, Sudachi C normalized forms    {base[0]:.3f}  {base[1]:.3f}"
          f"   ({base_s:.1f} s incl. tokenising)")
    print(f"  ours: kb index + related model                         {ours[0]:.3f}  {ours[1]:.3f}"
          f"   target P@5 >= {TARGET_P5}: {'met' if ours[0] >= TARGET_P5 else 'NOT met'}")
    print(f"\n  speed (ms), wall clock | CPU time          p50     p99     max   target "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    for label, (wall, cpu), target in (
            ("neighbours of a stored article (2000)", art_ms, ARTICLE_MS),
            (f"free text, {TEXT_CHARS} chars (200)", text_ms, TEXT_MS)):
        for clock, t in (("wall", wall), ("cpu ", cpu)):
            print(f"  {label:<38} {clock} {t['p50']:7.3f} {t['p99']:7.3f} {t['max']:7.2f}"
                  f"   p99 <= {target}")

    example = model.for_article(sample[0], 3)
    print(f"\n  example: 「{example['title']}」")
    for r in example["related"]:
        print(f"    {r['score']:.3f} 「{r['title']}」 terms: {'、'.join(r['terms'])}")
    dup_rows = np.flatnonzero(np.diff(model.arrays["dup_ptr"]) > 0)
    if len(dup_rows):
        d = model.for_article(model.ids[dup_rows[0]], 3)
        print(f"  near-duplicate example: 「{d['title']}」 = {[x['id'] for x in d['duplicates']]}")

    if args.variants:
        run_variants(items, articles, args.procs)
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
