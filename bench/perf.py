"""Performance suite over the livedoor corpus: build, updates, queries, HTTP load, cold start, scale.

    make bench          # or: .venv/bin/python -m bench.perf [--scale N] [--http-seconds S]

Every figure is a ratio against a reference measured in the same run, with the
absolute value beside it; the results replace the "Performance" section of
BENCHMARKS.md. Reads ../shared/data/livedoor (unpacked into a temporary folder).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from bench.datasets import REPO_ROOT, load_jsquad, unpack_livedoor
from bench.metrics import percentiles

KB = Path(sys.executable).with_name("kb")
SECTION = "## Performance"


# --- helpers ---------------------------------------------------------------------------


def write_jsonl(articles: list[dict], path: Path) -> Path:
    """Write livedoor articles as a kb JSON Lines source."""
    with open(path, "w", encoding="utf-8") as fh:
        for a in articles:
            row = {"id": a["id"], "title": a["title"] or a["id"], "body": a["body"] or a["title"],
                   "url": a.get("url") or None, "categories": [],
                   "tags": [a["category"]] if a.get("category") else []}
            date = (a.get("date") or "")[:10]
            if len(date) == 10:
                row["date"] = date
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def tokenise_only(texts: list[str]) -> float:
    """Seconds Sudachi alone takes over the texts in one process (the physical floor)."""
    from sudachipy import Dictionary, SplitMode

    from kb.analysis import chunks

    tok = Dictionary(dict="core").tokenizer(SplitMode.C)
    t0 = time.perf_counter()
    for text in texts:
        for _, piece in chunks(text):
            tok.tokenize(piece)
    return time.perf_counter() - t0


def run_kb(args: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    """Run the kb command; return (seconds, result)."""
    t0 = time.perf_counter()
    res = subprocess.run([str(KB), *args], capture_output=True, text=True, **kw)
    if res.returncode != 0:
        raise SystemExit(f"kb {' '.join(args)} failed:\n{res.stderr[-2000:]}")
    return time.perf_counter() - t0, res


def children_peak_rss_mb() -> float:
    """Largest resident set of any finished child process, in MB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(index_dir: Path, workers: int = 2) -> tuple[subprocess.Popen, int, float]:
    """Start `kb serve`; return (process, port, seconds until the first answered search)."""
    port = free_port()
    log = open(index_dir.parent / f"serve-{port}.log", "wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(KB), "serve", "--index", str(index_dir), "--port", str(port),
                             "--workers", str(workers)], stdout=log, stderr=subprocess.STDOUT)
    q = urllib.parse.quote("地方")
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", f"/api/search?q={q}")
            if conn.getresponse().status == 200:
                conn.close()
                return proc, port, time.perf_counter() - t0
        except OSError:
            pass
        if proc.poll() is not None or time.perf_counter() - t0 > 120:
            raise SystemExit("kb serve did not start; see " + log.name)
        time.sleep(0.05)


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (Linux /proc), in MB."""
    total = 0
    pids = [pid]
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        pids += [int(p) for p in out.split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def http_load(port: int, paths: list[str], clients: int, seconds: float) -> dict:
    """`clients` threads with keep-alive connections request paths for `seconds`."""
    stop = time.perf_counter() + seconds
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        rng = random.Random(n)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine: list[float] = []
        while time.perf_counter() < stop:
            path = rng.choice(paths)
            t0 = time.perf_counter()
            try:
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    with lock:
                        errors.append(f"{r.status} {path}")
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    errors.append(f"{type(exc).__name__} {path}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            mine.append((time.perf_counter() - t0) * 1000)
        conn.close()
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    p = percentiles(lat) if lat else {"p50": float("nan"), "p99": float("nan")}
    return {"requests": len(lat), "rps": len(lat) / wall, "p50": p["p50"], "p99": p["p99"],
            "errors": len(errors), "error_samples": errors[:5]}


def timed_calls(fn, items) -> dict:
    """p50/p99 in ms of fn(item) over items."""
    times = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - t0) * 1000)
    return percentiles(times)


def plain_whoosh_search(index):
    """The straightforward Whoosh search: QueryParser(OrGroup) on the body, top 10."""
    from whoosh.qparser import OrGroup, QueryParser

    parser = QueryParser("body", index.ix.schema, group=OrGroup)

    def run(q: str):
        return [h["id"] for h in index.searcher().search(parser.parse(q), limit=10)]
    return run


# --- the suite -------------------------------------------------------------------------


def scale_corpus(articles: list[dict], n: int, seed: int = 20261127) -> list[dict]:
    """A deterministic corpus of n articles made by recombining livedoor sentences."""
    from kb.analysis import split_sentences

    rng = random.Random(seed)
    sentences = [a["body"][s:e] for a in articles for s, e in split_sentences(a["body"])]
    titles = [a["title"] for a in articles]
    lengths = [len(split_sentences(a["body"])) or 1 for a in articles]
    out = []
    for i in range(n):
        k = rng.choice(lengths)
        body = "".join(rng.choice(sentences) for _ in range(k))
        out.append({"id": f"s{i:06d}", "title": rng.choice(titles), "body": body,
                    "category": "", "date": ""})
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=100_000,
                        help="articles in the generated scale corpus (0 skips it)")
    parser.add_argument("--http-seconds", type=float, default=30.0)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args(argv)
    out: dict = {"machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                             "memory_gb": round(os.sysconf("SC_PAGE_SIZE")
                                                * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        articles = unpack_livedoor(tmp / "livedoor")
        src = write_jsonl(articles, tmp / "livedoor.jsonl")
        texts = [t for a in articles for t in (a["title"], a["body"])]
        mb = sum(len(t.encode()) for t in texts) / 2**20
        print(f"livedoor: {len(articles)} articles, {mb:.1f} MB of text; "
              f"{os.cpu_count()} cores")

        # build: full build from files vs Sudachi alone, same text, same run
        tok_s = tokenise_only(texts)
        index_dir = tmp / "index"
        build_s, res = run_kb(["index", str(src), "--index", str(index_dir), "--quiet"])
        peak = children_peak_rss_mb()
        size = sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file()) / 2**20
        out["build"] = {"tokenise_s": tok_s, "build_s": build_s, "ratio": build_s / tok_s,
                        "peak_rss_mb": peak, "index_mb": size, "articles": len(articles)}
        print(f"build: {build_s:.1f}s vs tokenise-only {tok_s:.1f}s = {build_s / tok_s:.2f}x; "
              f"peak RSS {peak:.0f} MB; index {size:.1f} MB")

        # incremental updates through the library path kb add / kb remove use
        out["update"] = incremental_updates(index_dir, tmp)
        print("update: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in out["update"].items()))

        # queries in process
        from kb.index import OpenIndex
        from kb.search import search

        index = OpenIndex(index_dir)
        rng = random.Random(7)
        _, questions = load_jsquad()
        half = args.queries // 2
        queries = ([a["title"] for a in rng.sample(articles, half)]
                   + [q["q"] for q in rng.sample(questions, args.queries - half)])
        ref = plain_whoosh_search(index)
        timed_calls(ref, queries[:50])  # warm both paths the same way
        timed_calls(lambda q: search(index, q), queries[:50])
        out["query"] = {"reference_plain_whoosh": timed_calls(ref, queries),
                        "search": timed_calls(lambda q: search(index, q), queries)}
        extra_query_paths(index, articles, queries, out["query"], rng)
        for name, p in out["query"].items():
            print(f"query {name}: p50 {p['p50']:.1f} ms, p99 {p['p99']:.1f} ms")

        # cold start and HTTP load against the real server
        proc, port, cold = start_server(index_dir)
        try:
            paths = [f"/api/search?q={urllib.parse.quote(q)}" for q in queries[:300]]
            out["http"] = http_load(port, paths, clients=16, seconds=args.http_seconds)
            out["http"]["server_rss_mb"] = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        out["cold_start_s"] = cold
        h = out["http"]
        print(f"cold start {cold:.2f}s; HTTP 16 clients {args.http_seconds:.0f}s: "
              f"{h['requests']} requests, {h['rps']:.0f}/s, p50 {h['p50']:.1f} ms, "
              f"p99 {h['p99']:.1f} ms, errors {h['errors']}")

        if args.scale:
            out["scale"] = scale_run(articles, args.scale, tmp, out["build"], queries)
    if not args.no_write:
        write_report(out, argv)
    return out


def incremental_updates(index_dir: Path, tmp: Path) -> dict:
    """Seconds to add, change and remove one article in the built 7k index.

    Timed in process through the library call `kb add` / `kb remove` and the write
    API use, so interpreter start-up (which a running server never pays) is left out.
    """
    from kb.corpus import Article
    from kb.index import update_articles

    body = "自治体のコールセンター業務を民間事業者に委託した事例です。" * 20
    article = Article(id="bench-added", title="ベンチ用の追加記事", body=body)
    changed = Article(id="bench-added", title="ベンチ用の追加記事（改訂）", body=body + "改訂。")
    times = {}
    for label, kwargs in (("add", {"articles": [article]}), ("change", {"articles": [changed]}),
                          ("remove", {"remove_ids": ["bench-added"]})):
        t0 = time.perf_counter()
        update_articles(index_dir, **kwargs)
        times[label] = time.perf_counter() - t0
    return times


def extra_query_paths(index, articles, queries, out, rng) -> None:
    """Time related and ask when those modules exist."""
    ids = [a["id"] for a in rng.sample(articles, 200)]
    try:
        from kb import related
    except ImportError:
        related = None
    if related is not None and hasattr(related, "related_to"):
        try:
            model = related.load_model(index.generation_path)
            out["related"] = timed_calls(lambda i: related.related_to(model, i), ids)
        except Exception as exc:  # report, do not hide, a mismatch of interfaces
            print(f"related: not timed ({exc})")
    try:
        from kb import qa
    except ImportError:
        qa = None
    if qa is not None and hasattr(qa, "ask"):
        try:
            out["ask"] = timed_calls(lambda q: qa.ask(index, q), queries[-200:])
        except Exception as exc:
            print(f"ask: not timed ({exc})")


def scale_run(articles, n, tmp, build7k, queries) -> dict:
    """Build a generated n-article corpus; compare per-article cost with the 7k build."""
    big = scale_corpus(articles, n)
    src = write_jsonl(big, tmp / "scale.jsonl")
    index_dir = tmp / "scale-index"
    print(f"scale: building {n} articles …", flush=True)
    secs, _ = run_kb(["index", str(src), "--index", str(index_dir), "--quiet"])
    per = secs / n
    per7k = build7k["build_s"] / build7k["articles"]
    size = sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file()) / 2**20
    from kb.index import OpenIndex
    from kb.search import search

    index = OpenIndex(index_dir)
    lat = timed_calls(lambda q: search(index, q), queries[:300])
    proc, port, cold = start_server(index_dir)
    try:
        http_load(port, [f"/api/search?q={urllib.parse.quote(q)}" for q in queries[:100]], 4, 5)
        mem = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    res = {"articles": n, "build_s": secs, "per_article_ratio": per / per7k, "index_mb": size,
           "query_p99_ms": lat["p99"], "query_p50_ms": lat["p50"], "serve_rss_mb": mem,
           "cold_start_s": cold}
    print(f"scale: {n} articles in {secs:.0f}s ({per / per7k:.2f}x the 7k per-article cost), "
          f"index {size:.0f} MB, query p99 {lat['p99']:.0f} ms, serve RSS {mem:.0f} MB")
    return res


def _row(name, value, target="") -> str:
    return f"| {name} | {value} | {target} |"


def write_report(out: dict, argv) -> None:
    """Replace the Performance section of BENCHMARKS.md with this run's figures."""
    b, q, h = out["build"], out["query"], out["http"]
    m = out["machine"]
    cmd = "make bench" if not argv else "python -m bench.perf " + " ".join(argv)
    lines = [SECTION, "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M')} on {m['cores']} cores, "
             f"{m['memory_gb']} GB, Python {m['python']}; regenerate with `{cmd}` "
             "(figures from one run; the machine is shared, so compare ratios).", "",
             "| figure | this run | target |", "| --- | --- | --- |",
             _row("build (index + related) / Sudachi tokenisation alone",
                  f"{b['ratio']:.2f}x ({b['build_s']:.1f} s vs {b['tokenise_s']:.1f} s)",
                  "<= 1.25x"),
             _row("build peak RSS", f"{b['peak_rss_mb']:.0f} MB", "<= 1.5 GB"),
             _row("index size", f"{b['index_mb']:.1f} MB", "")]
    for k, v in out["update"].items():
        lines.append(_row(f"incremental {k} (one article, 7k index)", f"{v * 1000:.0f} ms",
                          "<= 500 ms"))
    ref = q["reference_plain_whoosh"]
    for name, p in q.items():
        ratio = f"; {p['p50'] / ref['p50']:.1f}x plain Whoosh p50" if name != "reference_plain_whoosh" else ""
        lines.append(_row(f"in-process {name} p50 / p99",
                          f"{p['p50']:.1f} / {p['p99']:.1f} ms{ratio}", ""))
    lines += [_row("HTTP search, 2 workers, 16 clients: requests/s", f"{h['rps']:.0f}", ""),
              _row("HTTP search p50 / p99", f"{h['p50']:.1f} / {h['p99']:.1f} ms",
                   "p99 <= 100 ms"),
              _row("HTTP errors", f"{h['errors']} of {h['requests']}", "0"),
              _row("server RSS (2 workers)", f"{h['server_rss_mb']:.0f} MB", ""),
              _row("cold start (kb serve to first search)", f"{out['cold_start_s']:.2f} s",
                   "<= 3 s")]
    if "scale" in out:
        s = out["scale"]
        lines += [_row(f"scale: build of {s['articles']:,} articles",
                       f"{s['build_s']:.0f} s, {s['per_article_ratio']:.2f}x the 7k per-article "
                       "cost", "<= 1.2x"),
                  _row("scale: index size", f"{s['index_mb']:.0f} MB", ""),
                  _row("scale: query p50 / p99", f"{s['query_p50_ms']:.0f} / "
                       f"{s['query_p99_ms']:.0f} ms", "p99 <= 150 ms"),
                  _row("scale: kb serve memory", f"{s['serve_rss_mb']:.0f} MB", "<= 2 GB")]
    lines.append("")
    path = REPO_ROOT / "BENCHMARKS.md"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    start = text.find(SECTION)
    if start >= 0:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + "\n".join(lines) + (text[end + 1:] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines)
    path.write_text(text, encoding="utf-8")
    (REPO_ROOT / "bench" / "last-perf.json").write_text(json.dumps(out, indent=2,
                                                                   ensure_ascii=False))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
