"""Reliability soak: fuzzing, crash kills and a load-and-fault run against a real `kb serve`.

    .venv/bin/python -m bench.soak [--seconds 60] [--fuzz-scale 10] [--kills 8] [--no-write]

1. Hypothesis fuzzing of every route (tests/test_fuzz.py at KB_FUZZ_SCALE): thousands of
   bad inputs and hostile texts; every answer a success or a clear 4xx.
2. Crash kills (tests/test_crash.py at KB_CRASH_KILLS): SIGKILL real `kb index` builds and
   real writer processes at random points; after each kill the index opens, answers and
   holds every acknowledged write.
3. Load and faults: `kb serve` (gunicorn, 2 workers) on 127.0.0.1 over a copy of corpus/;
   16 clients search, read articles, ask for related cases (and ask questions, when that
   endpoint exists) for --seconds, mixed with bad inputs; meanwhile two writers add,
   replace and delete articles through the API, full rebuilds (`kb index`) are swapped in,
   and a writer process is SIGKILLed while it holds the writer lock. Counted: requests,
   errors (a 5xx, a broken connection, or a status that does not fit the request; must
   be 0), acknowledged writes lost (must be 0), inconsistent answers (must be 0).

Writes the figures under "Reliability soak" in BENCHMARKS.md (other sections untouched).
Everything listens on 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote

from bench.datasets import REPO_ROOT

SECTION = "Reliability soak"
TOKEN = "soak-write-token-" + os.urandom(8).hex()
CLIENTS = 16
QUERIES = ["窓口業務 委託", "コールセンター", "指定管理", "ふるさと納税", "BPO", "ＢＰＯ",
           "引越し 手続き", '"指定管理料"', "窓口 -秋田", "子育て OR 介護", "year:2023 委託",
           "prefecture:静岡県", "令和5年度", "かけがわ", "待ち時間 短縮", "給付金 事務"]
BAD_QUERIES = ["", "   ", "あ" * 1001, '"', "(", ":", "*?", "AND", "OR NOT", "^~[]",
               "<script>alert(1)</script>", "\x00", "%FF"]
QUESTIONS = ["窓口業務の委託で待ち時間はどう変わった？", "指定管理者制度とは何ですか",
             "コールセンターを委託した自治体は？"]
TEXTS = ["市民課の窓口業務を民間事業者に委託し、繁忙期の待ち時間を短縮したい。",
         "ふるさと納税の返礼品の発送業務を委託する。"]


def log(msg: str) -> None:
    print(msg, flush=True)


# --- parts 1 and 2: the fuzz and crash tests at soak scale ---------------------------------


def run_pytest(test_file: str, env: dict, report: Path) -> tuple[dict, str, float]:
    """Run one test file with extra environment; return its report, summary line, seconds."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           test_file], cwd=REPO_ROOT, env={**os.environ, **env},
                          capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    summary = lines[-1] if lines else proc.stderr.strip()[-300:]
    if proc.returncode != 0:
        log(proc.stdout[-4000:])
    data = json.loads(report.read_text()) if report.exists() else {}
    return data, summary, time.perf_counter() - t0


# --- part 3: load and faults against kb serve --------------------------------------------


class Client:
    """One keep-alive HTTP connection to the server, like one browser tab or API client."""

    def __init__(self, port: int, stats: "Stats | None" = None):
        self.port, self.stats = port, stats
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, dict, bytes]:
        for attempt in (1, 2):
            reused = self.conn is not None
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                response = self.conn.getresponse()
                data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return response.status, dict(response.getheaders()), data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                # A server may close an idle keep-alive connection just as we reuse it;
                # HTTP clients retry that once on a new connection. Anything else counts.
                if not reused or attempt == 2:
                    raise
                if self.stats is not None:
                    with self.stats.lock:
                        self.stats.reconnects += 1
        raise AssertionError("unreachable")


class Stats:
    """Counters shared by every thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = Counter()
        self.errors: list[str] = []
        self.latency: dict[str, list[float]] = {}
        self.inconsistent: list[str] = []
        self.busy = 0
        self.reconnects = 0
        self.t0 = time.monotonic()
        self.writes: list[tuple] = []  # (t, method, seconds, status)
        self.events: list[tuple] = []  # (t, what)

    def record(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.requests[kind] += 1
            self.latency.setdefault(kind, []).append(seconds)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors.append(what)
            if len(self.errors) <= 20:
                log(f"  ERROR {what}")


def check_error_shape(data: bytes) -> bool:
    try:
        body = json.loads(data)
    except ValueError:
        return False
    return body.get("ok") is False and {"code", "message"} <= set(body.get("error", {}))


def reader(port: int, stats: Stats, stop: threading.Event, rng: random.Random, ids: list[str],
           routes: set[str]) -> None:
    """Search, read, relate and ask; every answer must fit its request."""
    client = Client(port, stats)
    last_generation = ""
    while not stop.is_set():
        roll = rng.random()
        if roll < 0.45:
            kind, q = "search", rng.choice(QUERIES)
            path, expect = f"/api/search?q={quote(q)}&page={rng.randint(1, 2)}", {200}
        elif roll < 0.55:
            kind, q = "bad input", rng.choice(BAD_QUERIES)
            raw = q if q.startswith("%") else quote(q)
            path = rng.choice([f"/api/search?q={raw}", f"/search?q={raw}",
                               f"/api/search?q=x&page={rng.choice(['0', '-1', 'x', '99999'])}",
                               f"/api/articles/{rng.choice(['..%2F..%2Fetc', '%00', 'no-such'])}"])
            # 414: a URL over gunicorn's 8 KB (1,001 kanji), answered in Japanese by our worker
            expect = {200, 400, 404, 414}
        elif roll < 0.65:
            kind, path, expect = "page", f"/search?q={quote(rng.choice(QUERIES))}", {200}
        elif roll < 0.8:
            kind = "article"
            path, expect = f"/api/articles/{quote(rng.choice(ids))}", {200, 404}
        elif roll < 0.9 and "/api/related/<path:article_id>" in routes:
            kind = "related"
            path, expect = f"/api/related/{quote(rng.choice(ids))}", {200, 404}
        elif roll < 0.95 and "/api/ask" in routes:
            kind, path, expect = "ask", f"/api/ask?q={quote(rng.choice(QUESTIONS))}", {200}
        else:
            kind, path, expect = "health", "/healthz", {200}
        body, headers, method = None, {}, "GET"
        if kind == "related" and rng.random() < 0.3 and "/api/related" in routes:
            method, path = "POST", "/api/related"
            body = json.dumps({"text": rng.choice(TEXTS)}, ensure_ascii=False).encode()
            headers = {"Content-Type": "application/json"}
            expect = {200}
        t0 = time.perf_counter()
        try:
            status, _, data = client.request(method, path, body, headers)
        except Exception as exc:  # noqa: BLE001 - every failure is counted
            stats.error(f"{kind} {path[:60]}: {type(exc).__name__}: {exc}")
            continue
        stats.record(kind, time.perf_counter() - t0)
        if status not in expect:
            stats.error(f"{kind} {path[:80]} -> {status} {data[:200]!r}")
        elif status >= 400 and status != 414 and path.startswith("/api/") \
                and not check_error_shape(data):
            stats.error(f"{kind} {path[:60]} -> {status} without the error shape")
        elif kind == "health":
            # one committed state at a time: once a client saw a generation, never an older one
            generation = json.loads(data)["generation"]
            if generation < last_generation:
                with stats.lock:
                    stats.inconsistent.append(f"generation {generation} after {last_generation}")
            last_generation = max(generation, last_generation)
        elif kind == "search":
            result = json.loads(data)
            hit_ids = [h["id"] for h in result["hits"]]
            if len(hit_ids) != len(set(hit_ids)) or result["total"] < len(hit_ids):
                with stats.lock:
                    stats.inconsistent.append(f"{path}: {hit_ids} total {result['total']}")


class Writer:
    """Adds, replaces and deletes articles through the API; remembers what was acknowledged."""

    def __init__(self, port: int, stats: Stats, name: str, rng: random.Random, ids: list[str]):
        self.client, self.stats, self.name, self.rng = Client(port, stats), stats, name, rng
        self.ids = ids  # the readers' list of ids to ask for: new articles join it
        self.live: dict[str, str] = {}  # id -> acknowledged title
        self.deleted: set[str] = set()
        self.n = 0
        self.auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def _send(self, method: str, path: str, article: dict | None, expect: int) -> bool:
        body = json.dumps(article, ensure_ascii=False).encode() if article else None
        for _ in range(20):
            t0 = time.perf_counter()
            try:
                status, headers, data = self.client.request(method, path, body, self.auth)
            except Exception as exc:  # noqa: BLE001
                self.stats.error(f"write {method} {path}: {type(exc).__name__}: {exc}")
                return False
            self.stats.record(f"write {method}", time.perf_counter() - t0)
            with self.stats.lock:
                self.stats.writes.append((round(time.monotonic() - self.stats.t0, 1), method,
                                          round(time.perf_counter() - t0, 2), status))
            if status == 503 and "Retry-After" in headers:
                with self.stats.lock:
                    self.stats.busy += 1
                time.sleep(float(headers["Retry-After"]))
                continue
            if status != expect:
                self.stats.error(f"write {method} {path} -> {status} {data[:200]!r}")
                return False
            return True
        self.stats.error(f"write {method} {path}: busy 20 times")
        return False

    def step(self) -> None:
        self.n += 1
        roll = self.rng.random()
        if self.live and roll < 0.2:
            article_id = self.rng.choice(sorted(self.live))
            if self._send("DELETE", f"/api/articles/{article_id}", None, 200):
                del self.live[article_id]
                self.deleted.add(article_id)
            return
        if self.live and roll < 0.55:
            article_id = self.rng.choice(sorted(self.live))
            title = f"ソーク更新 {article_id} 第{self.n}版 <script>alert(1)</script>"
            article = {"title": title, "body": f"窓口業務の委託を見直した。第{self.n}版。" * 5,
                       "categories": ["窓口業務"], "tags": ["ソーク", "</mark>"]}
            if self._send("PUT", f"/api/articles/{article_id}", article, 200):
                self.live[article_id] = title
        else:
            article_id = f"soak-{self.name}-{self.n}"
            title = f"ソーク記事 {article_id} <img src=x onerror=alert(1)>"
            article = {"id": article_id, "title": title, "prefecture": "千葉県",
                       "body": "市民課の窓口業務をソークで委託した。" * self.rng.randint(1, 20),
                       "categories": ["窓口業務"], "date": "2024-04-01"}
            if self._send("POST", "/api/articles", article, 201):
                self.live[article_id] = title
                self.ids.append(article_id)
        # read your own write, through whichever worker answers
        if self.live and self.rng.random() < 0.5:
            article_id = self.rng.choice(sorted(self.live))
            status, _, data = self.client.request("GET", f"/api/articles/{article_id}")
            if status != 200 or json.loads(data)["article"]["title"] != self.live[article_id]:
                self.stats.error(f"read-back of acknowledged {article_id}: {status}")


def start_server(index: Path, corpus: Path, port: int, log_file: Path) -> subprocess.Popen:
    env = {**os.environ, "KB_WRITE_TOKEN": TOKEN, "KB_CORPUS": str(corpus), "KB_READ_TOKEN": "",
           "KB_LOCK_TIMEOUT": "10", "KB_CONFIG": "", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "kb.cli", "serve", "--index", str(index),
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
                            cwd=REPO_ROOT, env=env, stdout=open(log_file, "wb"),
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if Client(port).request("GET", "/healthz")[0] == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"kb serve did not start; see {log_file}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_and_faults(seconds: float, seed: int) -> dict:
    """Run the load with faults; return the figures."""
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    import test_crash  # the crash tests' writer process and its acknowledgement log

    from kb.corpus import load_sources
    from kb.index import OpenIndex
    from kb.store import Store
    from web import create_app

    routes = {r.rule for r in create_app({"TESTING": True}).url_map.iter_rules()}
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="kb-soak-"))
    corpus, index = work / "corpus", work / "index"
    shutil.copytree(REPO_ROOT / "corpus", corpus, ignore=shutil.ignore_patterns("eval"))
    subprocess.run([sys.executable, "-m", "kb.cli", "index", str(corpus), "--index", str(index),
                    "--quiet"], cwd=REPO_ROOT, check=True, capture_output=True)
    ids = [a.id for a in load_sources([corpus]).articles]
    port = free_port()
    server = start_server(index, corpus, port, work / "server.log")
    stats, stop = Stats(), threading.Event()
    faults = Counter()
    writers = [Writer(port, stats, f"w{k}", random.Random(rng.random()), ids) for k in range(2)]
    killed_lines: list[str] = []
    try:
        threads = [threading.Thread(target=reader, args=(port, stats, stop,
                                                         random.Random(rng.random()), ids, routes))
                   for _ in range(CLIENTS)]

        def write_loop(w: Writer) -> None:
            while not stop.is_set():
                w.step()
                time.sleep(w.rng.uniform(0, 0.2))

        threads += [threading.Thread(target=write_loop, args=(w,)) for w in writers]
        started = time.monotonic()
        for t in threads:
            t.start()
        log(f"  {CLIENTS} clients and {len(writers)} writers on http://127.0.0.1:{port} "
            f"for {seconds:.0f} s")
        schedule = sorted([(seconds * 0.25, "rebuild"), (seconds * 0.5, "kill writer"),
                           (seconds * 0.7, "rebuild")])
        for at, fault in schedule:
            time.sleep(max(0.0, started + at - time.monotonic()))
            if fault == "rebuild":
                t0 = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "kb.cli", "index", str(corpus),
                                       "--index", str(index), "--quiet"], cwd=REPO_ROOT,
                                      capture_output=True, text=True)
                if done.returncode != 0:
                    stats.error(f"rebuild failed: {done.stderr[-300:]}")
                faults["full rebuild swapped in"] += 1
                stats.events.append((round(time.monotonic() - stats.t0, 1), "rebuild start",
                                     round(time.perf_counter() - t0, 1)))
                log(f"  t={time.monotonic() - started:4.1f}s rebuild swapped in "
                    f"({time.perf_counter() - t0:.1f} s): {done.stdout.strip().splitlines()[-1:]}")
            else:
                proc = test_crash.start_writer(corpus, index, seed=rng.randrange(10**6))
                time.sleep(rng.uniform(2.0, 5.0))  # it loads the dictionary, then writes
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                killed_lines = proc.stdout.read().splitlines()
                acks = sum(1 for ln in killed_lines if ln.startswith(("ACK ", "DEL ")))
                proc.stdout.close()
                faults["writer process SIGKILLed"] += 1
                log(f"  t={time.monotonic() - started:4.1f}s writer process killed after "
                    f"{acks} acknowledged writes")
        time.sleep(max(0.0, started + seconds - time.monotonic()))
        stop.set()
        for t in threads:
            t.join(timeout=60)
        elapsed = time.monotonic() - started
        # what the server says now, over HTTP
        client = Client(port)
        lost = []
        for w in writers:
            for article_id, title in w.live.items():
                status, _, data = client.request("GET", f"/api/articles/{article_id}")
                if status != 200 or json.loads(data)["article"]["title"] != title:
                    lost.append(article_id)
            for article_id in w.deleted:
                if client.request("GET", f"/api/articles/{article_id}")[0] != 404:
                    lost.append(f"deleted {article_id} is back")
    finally:
        stop.set()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    # the killed writer's acknowledged writes, and index == corpus after recovery
    try:
        test_crash.verify(corpus, index, *test_crash.acknowledged(killed_lines))
    except AssertionError as exc:
        lost.append(f"killed writer: {exc}")
    ix = OpenIndex(index)
    indexed = ix.doc_count()
    ix.close()
    on_disk = len(load_sources([corpus]).articles)
    server_log = (work / "server.log").read_text(errors="replace")
    tracebacks = server_log.count("Traceback")
    Store(corpus, index).recover()
    acked = sum(len(w.live) + len(w.deleted) for w in writers)
    writes = sum(v for k, v in stats.requests.items() if k.startswith("write"))
    result = {
        "seconds": round(elapsed, 1), "requests": sum(stats.requests.values()),
        "by_kind": dict(stats.requests), "errors": len(stats.errors),
        "error_samples": stats.errors[:5], "inconsistent": len(stats.inconsistent),
        "writes_acknowledged": writes, "busy_503_retried": stats.busy,
        "keepalive_reconnects": stats.reconnects,
        "lost_acknowledged_writes": len(lost), "lost_samples": lost[:5],
        "faults": dict(faults),
        "killed_writer_acks": sum(1 for ln in killed_lines if ln.startswith(("ACK ", "DEL "))),
        "final_articles_index": indexed, "final_articles_corpus": on_disk,
        "server_tracebacks": tracebacks, "acknowledged_tracked": acked,
        "p50_ms": {k: round(statistics.median(v) * 1000, 1) for k, v in stats.latency.items()},
        "p99_ms": {k: round(sorted(v)[int(len(v) * 0.99) - 1] * 1000, 1)
                   for k, v in stats.latency.items() if len(v) >= 100},
        "routes_exercised": sorted(k for k in stats.requests),
        "ask_endpoint": "/api/ask" in routes,
        "slowest_writes": sorted(stats.writes, key=lambda w: -w[2])[:8],
        "events": stats.events,
    }
    shutil.rmtree(work, ignore_errors=True)
    return result


# --- report ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--fuzz-scale", type=float, default=10)
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument("--load-only", action="store_true", help="skip parts 1 and 2 (to try)")
    args = parser.parse_args(argv)
    t_start = time.perf_counter()
    log(f"reliability soak, seed {args.seed}")
    if args.load_only:
        load = load_and_faults(args.seconds, args.seed)
        log(json.dumps(load, ensure_ascii=False, indent=1))
        return 0 if load["errors"] == load["lost_acknowledged_writes"] == 0 else 1
    tmp = Path(tempfile.mkdtemp(prefix="kb-soak-report-"))
    log(f"1. fuzzing every route (KB_FUZZ_SCALE={args.fuzz_scale:g}) ...")
    fuzz, fuzz_summary, fuzz_s = run_pytest(
        "tests/test_fuzz.py", {"KB_FUZZ_SCALE": str(args.fuzz_scale),
                               "KB_FUZZ_REPORT": str(tmp / "fuzz.json")}, tmp / "fuzz.json")
    fuzz_cases = sum(v for k, v in fuzz.items() if " " not in k)
    fuzz_5xx = sum(v for k, v in fuzz.items() if k.split()[-1].startswith("5"))
    log(f"   {fuzz_summary} in {fuzz_s:.0f} s; {fuzz_cases} fuzzed requests, {fuzz_5xx} 5xx")

    log(f"2. crash kills (KB_CRASH_KILLS={args.kills}) ...")
    crash, crash_summary, crash_s = run_pytest(
        "tests/test_crash.py", {"KB_CRASH_KILLS": str(args.kills),
                                "KB_CRASH_SEED": str(args.seed),
                                "KB_CRASH_REPORT": str(tmp / "crash.json")}, tmp / "crash.json")
    log(f"   {crash_summary} in {crash_s:.0f} s; {crash}")

    log(f"3. load and faults for {args.seconds:g} s ...")
    load = load_and_faults(args.seconds, args.seed)
    log("   " + json.dumps(load, ensure_ascii=False))

    ok = (("failed" not in fuzz_summary and "error" not in fuzz_summary) and fuzz_5xx == 0
          and "failed" not in crash_summary and "error" not in crash_summary
          and load["errors"] == 0 and load["lost_acknowledged_writes"] == 0
          and load["inconsistent"] == 0 and crash.get("kills", 0) + 1 >= 20)
    total = time.perf_counter() - t_start
    kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(load["by_kind"].items()))
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M')} with `.venv/bin/python -m bench.soak "
        f"--seconds {args.seconds:g} --fuzz-scale {args.fuzz_scale:g} --kills {args.kills} "
        f"--seed {args.seed}` ({total:.0f} s, {os.cpu_count()} cores; everything on 127.0.0.1). "
        f"Result: {'PASS' if ok else 'FAIL'}.", "",
        "| figure | this run | must be |", "| --- | --- | --- |",
        f"| bad inputs and hostile texts fuzzed (Hypothesis, every route) | {fuzz_cases:,} "
        f"requests, {fuzz_5xx} answered 5xx | 0 x 5xx |",
        f"| fuzz tests | {fuzz_summary} | all pass |",
        f"| processes SIGKILLed at random points | {crash.get('kills', 0) + 1} ({crash.get('build_kills', 0)} "
        f"`kb index` builds, {crash.get('writer_kills', 0)} writers in the crash tests, "
        f"1 writer during the load run) | >= 20 |",
        f"| acknowledged writes checked after kills | {crash.get('acknowledged', 0):,} over "
        f"{crash.get('verifications', 0)} checks; lost: 0 unless the crash tests failed "
        f"({crash_summary}) | 0 lost |",
        f"| load run | {load['seconds']} s, {CLIENTS} clients + 2 API writers against "
        f"`kb serve` (gunicorn, 2 workers) | 60 s |",
        f"| requests served | {load['requests']:,} ({kinds}) | |",
        "| faults injected during the load run | "
        + ", ".join(f"{v} x {k}" for k, v in load["faults"].items())
        + f"; bad inputs mixed into the load: {load['by_kind'].get('bad input', 0):,} | |",
        f"| errors (5xx, broken connections, wrong status) | {load['errors']} | 0 |",
        f"| acknowledged writes (API) / lost | {load['writes_acknowledged']:,} / "
        f"{load['lost_acknowledged_writes']} | 0 lost |",
        f"| writes answered 503 busy + Retry-After, then retried | {load['busy_503_retried']} | |",
        f"| idle keep-alive connections closed by the server, retried once | "
        f"{load['keepalive_reconnects']} | |",
        f"| inconsistent answers (a search with duplicate hits or total < hits; a client "
        f"served an older index generation after a newer one) | {load['inconsistent']} | 0 |",
        f"| articles at the end: index / corpus folder | {load['final_articles_index']} / "
        f"{load['final_articles_corpus']} | equal |",
        f"| server tracebacks logged | {load['server_tracebacks']} | 0 |",
        "| latency p50 (ms) | " + ", ".join(f"{k} {v}" for k, v in
                                              sorted(load["p50_ms"].items())) + " | |",
        "| latency p99 (ms) | " + ", ".join(f"{k} {v}" for k, v in
                                              sorted(load["p99_ms"].items())) + " | |",
    ]
    if not load["ask_endpoint"]:
        lines += ["", "No `/api/ask` route existed when this ran, so the clients did not ask "
                      "questions; they read health instead."]
    report = "\n".join(lines)
    log("\n" + report)
    if not args.no_write:
        from bench.run_all import replace_section

        replace_section(SECTION, report)
        log("wrote BENCHMARKS.md")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
