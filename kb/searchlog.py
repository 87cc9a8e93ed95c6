"""The search log: what people searched for, what they found and what they opened.

One local SQLite file holds two tables, `searches` and `clicks`. No personal data is
kept: no address, no browser, no account, unless the operator turns on
`SEARCH_LOG_CLIENT` (then the address and user agent are kept too, for the
retention period like everything else). Rows older than the retention period are
deleted as the log is written.

Several server processes write to the same file: it is in WAL mode (readers never
block the writer), each write is one short transaction on its own connection, and a
busy database is waited for briefly (busy timeout). Each thread keeps its writing
connection open (opening one cost more than the search it logs). Callers treat a
failed write as a lost log line, never as a failed search.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
import unicodedata
from contextlib import closing
from pathlib import Path

BUSY_TIMEOUT = 1.0  # seconds a write waits for another process's write
PURGE_EVERY = 3600  # seconds between deletions of expired rows, per process
MAX_QUERY_CHARS = 1000
MAX_ARTICLE_ID = 128
_SPACE = re.compile(r"[\s\u3000]+")

SCHEMA = """
CREATE TABLE IF NOT EXISTS searches (
    id        TEXT PRIMARY KEY,   -- random, made per search; ties clicks to it
    at        REAL NOT NULL,      -- Unix time
    query     TEXT NOT NULL,      -- as typed
    norm      TEXT NOT NULL,      -- widths, case and spaces folded: groups the same query
    filters   TEXT NOT NULL,      -- JSON {"prefecture": [...], ...}
    sort      TEXT NOT NULL,
    page      INTEGER NOT NULL,
    hits      INTEGER NOT NULL,   -- total matching articles
    relaxed   TEXT,               -- how the query had to be relaxed, if it was
    took_ms   REAL,
    via       TEXT NOT NULL,      -- page | api
    client    TEXT,               -- only with SEARCH_LOG_CLIENT on
    agent     TEXT                -- only with SEARCH_LOG_CLIENT on
);
CREATE INDEX IF NOT EXISTS searches_at ON searches(at);
CREATE INDEX IF NOT EXISTS searches_norm ON searches(norm);
CREATE TABLE IF NOT EXISTS clicks (
    id         INTEGER PRIMARY KEY,
    search_id  TEXT NOT NULL,
    at         REAL NOT NULL,
    article_id TEXT NOT NULL,
    rank       INTEGER
);
CREATE INDEX IF NOT EXISTS clicks_search ON clicks(search_id);
CREATE INDEX IF NOT EXISTS clicks_at ON clicks(at);
"""


def normalize_query(text: str) -> str:
    """Fold a query so the same search typed differently groups together."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text or "").lower()).strip()


class SearchLog:
    """A search log in one SQLite file, safe to write from several processes."""

    _ready: set[tuple[int, str]] = set()  # (pid, path) whose schema this process checked
    _ready_lock = threading.Lock()

    def __init__(self, path: str | Path, retention_days: int = 90, keep_client: bool = False):
        self.path = Path(path)
        self.retention_days = retention_days
        self.keep_client = keep_client
        self._last_purge = 0.0
        self._local = threading.local()

    # --- connections --------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        conn.execute("PRAGMA synchronous = NORMAL")  # durable enough for a log, in WAL mode
        key = (os.getpid(), str(self.path))
        if key not in self._ready:
            with self._ready_lock:
                if key not in self._ready:
                    conn.execute("PRAGMA journal_mode = WAL")
                    conn.executescript(SCHEMA)
                    self._ready.add(key)
        return conn

    def create(self) -> None:
        """Create the file and its tables now (otherwise the first write does)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()):
            pass

    def _writer(self) -> sqlite3.Connection:
        """This thread's open writing connection (a new one after a fork or a lost file)."""
        held = getattr(self._local, "conn", None)
        if held is not None and held[0] == os.getpid() and self.path.exists():
            return held[1]
        if held is not None and held[0] == os.getpid():
            held[1].close()
        self._local.conn = None
        if not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        self._local.conn = (os.getpid(), conn)
        return conn

    def _write(self, sql: str, params: tuple) -> int:
        conn = self._writer()
        try:
            count = conn.execute(sql, params).rowcount  # autocommit: one short transaction
        except sqlite3.Error:
            self._local.conn = None  # start afresh next time
            conn.close()
            raise
        self._maybe_purge()
        return count

    # --- writing --------------------------------------------------------------------

    def record_search(self, search_id: str, query: str, *, filters: dict | None = None,
                      hits: int = 0, page: int = 1, sort: str = "relevance",
                      relaxed: str | None = None, took_ms: float | None = None,
                      via: str = "page", client: str | None = None, agent: str | None = None,
                      at: float | None = None) -> None:
        """Record one search (the client's address and agent only if the operator keeps them)."""
        query = (query or "")[:MAX_QUERY_CHARS]
        if not self.keep_client:
            client = agent = None
        self._write(
            "INSERT OR IGNORE INTO searches (id, at, query, norm, filters, sort, page, hits,"
            " relaxed, took_ms, via, client, agent) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (search_id, at if at is not None else time.time(), query, normalize_query(query),
             json.dumps(filters or {}, ensure_ascii=False, sort_keys=True), sort, page, hits,
             relaxed, took_ms, via, client and client[:64], agent and agent[:300]))

    def record_click(self, search_id: str, article_id: str, rank: int | None = None,
                     at: float | None = None) -> bool:
        """Record that a result of a logged search was opened; False if no such search."""
        if not search_id or not article_id or len(article_id) > MAX_ARTICLE_ID:
            return False
        added = self._write(
            "INSERT INTO clicks (search_id, at, article_id, rank)"
            " SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM searches WHERE id = ?)",
            (search_id, at if at is not None else time.time(), article_id, rank, search_id))
        return added > 0

    def purge(self, now: float | None = None) -> int:
        """Delete rows older than the retention period; return how many searches went."""
        cutoff = (now if now is not None else time.time()) - self.retention_days * 86400
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                gone = conn.execute("DELETE FROM searches WHERE at < ?", (cutoff,)).rowcount
                conn.execute("DELETE FROM clicks WHERE at < ?", (cutoff,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._last_purge = time.time()
        return gone

    def _maybe_purge(self) -> None:
        if time.time() - self._last_purge >= PURGE_EVERY:
            self._last_purge = time.time()
            self.purge()

    # --- reading --------------------------------------------------------------------

    def insights(self, days: int = 30, limit: int = 20, now: float | None = None) -> dict:
        """Return popular queries, zero-hit queries and queries whose results nobody opened.

        Each query counts its first-page searches (later pages are the same search);
        clicks count from any page of it.
        """
        since = (now if now is not None else time.time()) - days * 86400
        if not self.path.exists():
            return {"days": days, "searches": 0, "zero_hit_searches": 0, "clicked_searches": 0,
                    "popular": [], "zero_hits": [], "no_clicks": []}
        with closing(self._connect()) as conn:
            conn.row_factory = sqlite3.Row
            groups = {r["norm"]: dict(r) for r in conn.execute(
                "SELECT norm, COUNT(*) AS searches, SUM(hits = 0) AS zero,"
                " ROUND(AVG(hits), 1) AS avg_hits, MAX(at) AS last_at,"
                " (SELECT query FROM searches s2 WHERE s2.norm = s.norm AND s2.at >= ?"
                "  ORDER BY at DESC LIMIT 1) AS query"
                " FROM searches s WHERE at >= ? AND page = 1 AND norm != '' GROUP BY norm",
                (since, since))}
            clicked = dict(conn.execute(
                "SELECT s.norm, COUNT(DISTINCT c.search_id) FROM clicks c"
                " JOIN searches s ON s.id = c.search_id WHERE c.at >= ? GROUP BY s.norm",
                (since,)).fetchall())
            totals = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(hits = 0), 0) FROM searches"
                " WHERE at >= ? AND page = 1", (since,)).fetchone()
            clicked_searches = conn.execute(
                "SELECT COUNT(DISTINCT search_id) FROM clicks WHERE at >= ?",
                (since,)).fetchone()[0]
        rows = []
        for norm, g in groups.items():
            rows.append({"query": g["query"], "searches": g["searches"],
                         "zero_hit_searches": g["zero"], "avg_hits": g["avg_hits"],
                         "clicks": clicked.get(norm, 0),
                         "last_at": time.strftime("%Y-%m-%d %H:%M", time.localtime(g["last_at"]))})
        by_count = sorted(rows, key=lambda r: (-r["searches"], r["query"]))
        return {
            "days": days,
            "searches": totals[0],
            "zero_hit_searches": totals[1],
            "clicked_searches": clicked_searches,
            "popular": by_count[:limit],
            "zero_hits": sorted((r for r in rows if r["zero_hit_searches"]),
                                key=lambda r: (-r["zero_hit_searches"], r["query"]))[:limit],
            "no_clicks": [r for r in by_count
                          if r["avg_hits"] and r["zero_hit_searches"] < r["searches"]
                          and not r["clicks"]][:limit],
        }
