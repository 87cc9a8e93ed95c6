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
import socket
import statistics
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


def run_kb(args: list[str], env: dict | None = None) -> tuple[float, dict]:
    """Run the kb command; return (seconds, peak memory of it and its workers in MB).

    Memory is sampled every 0.5 s over the whole process tree (the build forks
    tokenising workers), so the peak is what the machine had to hold at once.
    """
    t0 = time.perf_counter()
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen([str(KB), *args], stdout=subprocess.DEVNULL, stderr=err,
                            env={**os.environ, **(env or {})})
    peak = {"pss": 0.0, "rss": 0.0}
    while proc.poll() is None:
        now = memory_mb(proc.pid)
        peak = {k: max(peak[k], now[k]) for k in peak}
        try:  # reading smaps_rollup walks page tables: not too often
            proc.wait(timeout=0.5)  # but return the moment the command ends
        except subprocess.TimeoutExpired:
            pass
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        err.seek(0)
        raise SystemExit(f"kb {' '.join(args)} failed:\n{err.read().decode()[-2000:]}")
    return seconds, peak


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(index_dir: Path, workers: int = 2, env: dict | None = None
                 ) -> tuple[subprocess.Popen, int, float]:
    """Start `kb serve`; return (process, port, seconds until the first answered search)."""
    port = free_port()
    log = open(index_dir.parent / f"serve-{port}.log", "wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(KB), "serve", "--index", str(index_dir), "--port", str(port),
                             "--workers", str(workers)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
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


def memory_mb(pid: int) -> dict:
    """Memory of a process and its children (Linux /proc), in MB.

    "pss" shares each page among the processes that map it (the Sudachi dictionary
    and the index files are mapped by every worker): the memory the server really
    takes. "pss_anon" is its heap; "pss_file", pages of mapped files (the index, the
    dictionary), which the kernel can drop and read again. "rss" adds every process's
    resident pages, counting shared ones again.
    """
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids += [int(p) for p in task.read_text().split()]
        except OSError:
            continue
    total = {"pss": 0, "rss": 0, "pss_anon": 0, "pss_file": 0}
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                key, _, rest = line.partition(":")
                if key.lower() in total:
                    total[key.lower()] += int(rest.split()[0])
        except OSError:
            continue
    return {k: v / 1024 for k, v in total.items()}


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
        corpus_dir = tmp / "corpus"  # a folder, so the write API can add files beside it
        corpus_dir.mkdir()
        write_jsonl(articles, corpus_dir / "livedoor.jsonl")
        texts = [t for a in articles for t in (a["title"], a["body"])]
        mb = sum(len(t.encode()) for t in texts) / 2**20
        print(f"livedoor: {len(articles)} articles, {mb:.1f} MB of text; "
              f"{os.cpu_count()} cores")

        # build: full build from files vs Sudachi alone, same text, same run
        tok_s = tokenise_only(texts)
        index_dir = tmp / "index"
        build_s, peak = run_kb(["index", str(corpus_dir), "--index", str(index_dir), "--quiet"])
        size = sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file()) / 2**20
        out["build"] = {"tokenise_s": tok_s, "build_s": build_s, "ratio": build_s / tok_s,
                        "peak_pss_mb": peak["pss"], "peak_rss_mb": peak["rss"],
                        "index_mb": size, "articles": len(articles)}
        print(f"build: {build_s:.1f}s vs tokenise-only {tok_s:.1f}s = {build_s / tok_s:.2f}x; "
              f"peak memory {peak['pss']:.0f} MB (PSS); index {size:.1f} MB")

        # incremental updates: the library path `kb add` / `kb remove` and the API run,
        # then the commands themselves (their wall time includes starting Python)
        out["update"] = store_updates(corpus_dir, index_dir)
        out["update_cli"] = cli_updates(corpus_dir, index_dir, tmp)
        print("update (kb.store): " + _fmt_updates(out["update"]))
        print("update (kb add/remove commands): " + _fmt_updates(out["update_cli"]))

        # queries in process
        from kb.index import OpenIndex
        from kb.search import search

        index = OpenIndex(index_dir)
        rng = random.Random(7)
        _, questions = load_jsquad()
        half = args.queries // 2
        queries = ([a["title"] for a in rng.sample(articles, half)]
                   + [q["q"] for q in rng.sample(questions, args.queries - half)])
        rng.shuffle(queries)
        ref = plain_whoosh_search(index)
        timed_calls(ref, queries[:50])  # warm both paths the same way
        timed_calls(lambda q: search(index, q), queries[:50])
        out["query"] = {"reference_plain_whoosh": timed_calls(ref, queries),
                        "search": timed_calls(lambda q: search(index, q), queries)}
        extra_query_paths(index, index_dir, articles, queries, out["query"], rng)
        index.close()
        for name, p in out["query"].items():
            print(f"query {name}: p50 {p['p50']:.1f} ms, p99 {p['p99']:.1f} ms")

        # cold start, HTTP load and writes through the API against the real server
        proc, port, cold = start_server(index_dir, env={"KB_WRITE_TOKEN": API_TOKEN,
                                                        "KB_CORPUS": str(corpus_dir)})
        try:
            paths = [f"/api/search?q={urllib.parse.quote(q)}" for q in queries]
            out["http"] = http_load(port, paths, clients=16, seconds=args.http_seconds)
            out["http"]["server_memory_mb"] = memory_mb(proc.pid)
            out["update_api"] = api_updates(port)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        out["cold_start_s"] = cold
        h = out["http"]
        print(f"cold start {cold:.2f}s; HTTP 16 clients {args.http_seconds:.0f}s: "
              f"{h['requests']} requests, {h['rps']:.0f}/s, p50 {h['p50']:.1f} ms, "
              f"p99 {h['p99']:.1f} ms, errors {h['errors']}; server memory "
              f"{h['server_memory_mb']['pss']:.0f} MB (PSS)")
        print("update (write API): " + _fmt_updates(out["update_api"]))

        if args.scale:
            out["scale"] = scale_run(articles, args.scale, tmp, out["build"], queries)
    if not args.no_write:
        write_report(out, argv)
    return out


def _fmt_updates(times: dict) -> str:
    return ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in times.items() if k != "runs")


API_TOKEN = "perf-bench-token"  # a throwaway token for the temporary server
UPDATE_BODY = "自治体のコールセンター業務を民間事業者に委託した事例です。" * 20


def _visible(index, word: str, article_id: str) -> bool:
    from kb.search import search

    index.refresh()
    return any(h["id"] == article_id for h in search(index, word, per_page=50)["hits"])


def store_updates(corpus_dir: Path, index_dir: Path, runs: int = 5) -> dict:
    """Median seconds to add, change and remove one article in the built 7k index.

    Through kb.store, which `kb add`/`kb remove` and the write API call: the source
    file written durably, the index committed and flushed. Each write is checked to
    be visible to a searcher right after it returns.
    """
    from kb.index import OpenIndex
    from kb.store import Store

    store = Store(corpus_dir, index_dir)
    index = OpenIndex(index_dir)
    times: dict[str, list[float]] = {"add": [], "change": [], "remove": []}
    for i in range(runs):
        article_id, word = f"bench-store-{i}", f"ベンチ追加{i}号"
        steps = (("add", lambda: store.create({"id": article_id, "title": word,
                                               "body": UPDATE_BODY}), True),
                 ("change", lambda: store.replace(article_id, {"title": word + "改訂",
                                                               "body": UPDATE_BODY + "改訂。"}),
                  True),
                 ("remove", lambda: store.delete([article_id]), False))
        for label, step, present in steps:
            t0 = time.perf_counter()
            step()
            times[label].append(time.perf_counter() - t0)
            if _visible(index, word, article_id) != present:
                raise SystemExit(f"{label} of {article_id} was not visible after commit")
    index.close()
    return {k: statistics.median(v) for k, v in times.items()} | {"runs": runs}


def cli_updates(corpus_dir: Path, index_dir: Path, tmp: Path) -> dict:
    """Wall seconds of `kb add FILE` and `kb remove ID` as a user runs them."""
    src = tmp / "bench-cli.md"
    times = {}
    for label, text in (("add", "最初の版"), ("change", "改訂した版")):
        src.write_text(f"---\nid: bench-cli\ntitle: ベンチ用の記事（{text}）\n---\n\n"
                       f"{UPDATE_BODY}\n", encoding="utf-8")
        times[label], _ = run_kb(["add", str(src), "--index", str(index_dir),
                                  "--corpus", str(corpus_dir)])
    times["remove"], _ = run_kb(["remove", "bench-cli", "--index", str(index_dir),
                                 "--corpus", str(corpus_dir)])
    return times


def api_updates(port: int, runs: int = 5) -> dict:
    """Median seconds of POST, PUT and DELETE of one article through the write API."""
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
    times: dict[str, list[float]] = {"add": [], "change": [], "remove": []}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(method: str, path: str, body: dict | None = None) -> int:
        conn.request(method, path, body=json.dumps(body, ensure_ascii=False).encode()
                     if body is not None else None, headers=headers)
        r = conn.getresponse()
        r.read()
        return r.status

    for i in range(runs):
        article_id, word = f"bench-api-{i}", f"ベンチAPI{i}号"
        for label, method, path, body, ok in (
                ("add", "POST", "/api/articles", {"id": article_id, "title": word,
                                                   "body": UPDATE_BODY}, 201),
                ("change", "PUT", f"/api/articles/{article_id}",
                 {"title": word + "改訂", "body": UPDATE_BODY + "改訂。"}, 200),
                ("remove", "DELETE", f"/api/articles/{article_id}", None, 200)):
            t0 = time.perf_counter()
            status = call(method, path, body)
            times[label].append(time.perf_counter() - t0)
            if status != ok:
                raise SystemExit(f"write API {method} {path}: {status}")
        # searchers (any worker) see it gone right after the DELETE answered
        status = call("GET", f"/api/search?q={urllib.parse.quote(word)}")
        if status != 200:
            raise SystemExit(f"search after the writes: {status}")
    conn.close()
    return {k: statistics.median(v) for k, v in times.items()} | {"runs": runs}


def extra_query_paths(index, index_dir, articles, queries, out, rng) -> None:
    """Time related (stored articles and free text) and ask over the same queries."""
    from kb import qa, related

    model = related.open_model(index_dir)
    ids = [a["id"] for a in rng.sample(articles, 200)]
    timed_calls(lambda i: model.for_article(i), ids[:20])
    out["related (stored article)"] = timed_calls(lambda i: model.for_article(i), ids)
    out["related (free text)"] = timed_calls(lambda q: model.for_text(q), queries)
    timed_calls(lambda q: qa.ask(index, q), queries[:20])
    out["ask"] = timed_calls(lambda q: qa.ask(index, q), queries)


def scale_run(articles, n, tmp, build7k, queries) -> dict:
    """Build a generated n-article corpus; compare per-article cost with the 7k build."""
    big = scale_corpus(articles, n)
    src = write_jsonl(big, tmp / "scale.jsonl")
    del big
    index_dir = tmp / "scale-index"
    print(f"scale: building {n} articles …", flush=True)
    secs, peak = run_kb(["index", str(src), "--index", str(index_dir), "--quiet"])
    per = secs / n
    per7k = build7k["build_s"] / build7k["articles"]
    size = sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file()) / 2**20
    from kb.index import OpenIndex
    from kb.search import search

    index = OpenIndex(index_dir)
    timed_calls(lambda q: search(index, q), queries[:50])
    lat = timed_calls(lambda q: search(index, q), queries)
    index.close()
    proc, port, cold = start_server(index_dir)
    try:
        load = http_load(port, [f"/api/search?q={urllib.parse.quote(q)}" for q in queries],
                         16, 15)
        mem = memory_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    res = {"articles": n, "build_s": secs, "per_article_ratio": per / per7k, "index_mb": size,
           "build_peak_pss_mb": peak["pss"], "query_p99_ms": lat["p99"],
           "query_p50_ms": lat["p50"], "serve_memory_mb": mem, "cold_start_s": cold,
           "http": load}
    print(f"scale: {n} articles in {secs:.0f}s ({per / per7k:.2f}x the 7k per-article cost), "
          f"peak {peak['pss']:.0f} MB; index {size:.0f} MB, query p50 {lat['p50']:.0f} ms "
          f"p99 {lat['p99']:.0f} ms; serve {mem['pss']:.0f} MB (PSS) after 15 s of 16 clients "
          f"(p99 {load['p99']:.0f} ms, errors {load['errors']})")
    return res


def _memory(m: dict) -> str:
    return (f"{m['pss']:.0f} MB: heap {m.get('pss_anon', 0):.0f} MB, mapped files (index, "
            f"dictionary; the kernel can drop them) {m.get('pss_file', 0):.0f} MB")


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
             "(figures from one run; the machine is shared, so compare ratios). Memory is "
             "PSS summed over the process tree: pages shared by workers (the dictionary, "
             "the index files) count once.", "",
             "| figure | this run | target |", "| --- | --- | --- |",
             _row("build (index + related) / Sudachi tokenisation alone",
                  f"{b['ratio']:.2f}x ({b['build_s']:.1f} s vs {b['tokenise_s']:.1f} s)",
                  "<= 1.25x"),
             _row("build peak memory", f"{b['peak_pss_mb']:.0f} MB", "<= 1.5 GB"),
             _row("index size", f"{b['index_mb']:.1f} MB", "")]
    for source, label in (("update", "kb.store, in process"), ("update_api", "write API"),
                          ("update_cli", "kb add / kb remove, wall incl. Python start")):
        for k, v in out.get(source, {}).items():
            if k != "runs":
                lines.append(_row(f"incremental {k} of one article, 7k index ({label})",
                                  f"{v * 1000:.0f} ms", "<= 500 ms"))
    ref = q["reference_plain_whoosh"]
    for name, p in q.items():
        ratio = (f"; {p['p50'] / ref['p50']:.1f}x plain Whoosh p50"
                 if name != "reference_plain_whoosh" else "")
        lines.append(_row(f"in-process {name} p50 / p99",
                          f"{p['p50']:.1f} / {p['p99']:.1f} ms{ratio}", ""))
    lines += [_row("HTTP search, 2 workers, 16 clients: requests/s", f"{h['rps']:.0f}", ""),
              _row("HTTP search p50 / p99", f"{h['p50']:.1f} / {h['p99']:.1f} ms",
                   "p99 <= 100 ms"),
              _row("HTTP errors", f"{h['errors']} of {h['requests']}", "0"),
              _row("server memory after the load (2 workers)",
                   _memory(h['server_memory_mb']), ""),
              _row("cold start (kb serve to first search)", f"{out['cold_start_s']:.2f} s",
                   "<= 3 s")]
    if "scale" in out:
        s = out["scale"]
        lines += [_row(f"scale: build of {s['articles']:,} articles",
                       f"{s['build_s']:.0f} s, {s['per_article_ratio']:.2f}x the 7k per-article "
                       f"cost; peak memory {s['build_peak_pss_mb']:.0f} MB", "<= 1.2x"),
                  _row("scale: index size", f"{s['index_mb']:.0f} MB", ""),
                  _row("scale: in-process search p50 / p99", f"{s['query_p50_ms']:.0f} / "
                       f"{s['query_p99_ms']:.0f} ms", "p99 <= 150 ms"),
                  _row("scale: HTTP search p50 / p99 (16 clients, 15 s)",
                       f"{s['http']['p50']:.0f} / {s['http']['p99']:.0f} ms, "
                       f"{s['http']['errors']} errors", ""),
                  _row("scale: kb serve memory after the load",
                       _memory(s['serve_memory_mb']), "<= 2 GB")]
    lines.append("")
    path = REPO_ROOT / "BENCHMARKS.md"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    start = text.find(SECTION)
    if start >= 0:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + "\n".join(lines) + ("\n" + text[end + 1:] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines)
    path.write_text(text, encoding="utf-8")
    (REPO_ROOT / "bench" / "last-perf.json").write_text(json.dumps(out, indent=2,
                                                                   ensure_ascii=False))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
