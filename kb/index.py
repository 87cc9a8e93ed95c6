"""The Whoosh index: schema, build, update and open (the one place Whoosh is written).

Layout of an index folder DIR:
    DIR/meta.json        package version, analysis settings, current generation
    DIR/gen-<stamp>/     one complete index (Whoosh files, related model)
A build writes a new generation beside the old one and swaps it in by replacing
meta.json atomically, so a failed or killed build leaves the previous index serving.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from whoosh import index as whoosh_index
from whoosh.fields import ID, KEYWORD, NUMERIC, STORED, TEXT, Schema

from . import __version__
from .analysis import ANALYSIS_VERSION, STOP_TAGS, AnalyzedText, Morph, analyze, sudachi_analyzer
from .corpus import Article
from .errors import ArticleNotFound, IndexIncompatible, IndexMissing
from .years import fiscal_year

SCHEMA_VERSION = 1
META_FILE = "meta.json"
GENERATION_PREFIX = "gen-"
KEEP_GENERATIONS = 2  # the current one and the one before, for readers mid-swap
ANALYSIS_SETTINGS = {
    "analysis_version": ANALYSIS_VERSION,
    "dictionary": "sudachidict-core",
    "index_units": "C+A",
    "query_units": "C",
    "term": "normalized_form, lower-cased, okurigana folded",
    "stop_tags": [",".join(t) for t in STOP_TAGS],
}


def make_schema() -> Schema:
    """Return the index schema."""
    text = sudachi_analyzer()
    return Schema(
        id=ID(stored=True, unique=True),
        title=TEXT(analyzer=text, stored=True, phrase=True, field_boost=1.0),
        body=TEXT(analyzer=text, stored=True, phrase=True),
        # place names, categories and tags, searchable as words too
        keywords=TEXT(analyzer=text, phrase=False),
        date=ID(stored=True, sortable=True),
        year=NUMERIC(int, stored=True, sortable=True, signed=False),
        prefecture=ID(stored=True, sortable=True),
        municipality=ID(stored=True),
        categories=KEYWORD(stored=True, commas=True, scorable=False),
        tags=KEYWORD(stored=True, commas=True, scorable=False),
        url=STORED(),
        source=STORED(),
        path=STORED(),
    )


# --- meta and generations ------------------------------------------------------------


def read_meta(index_dir: Path) -> dict:
    """Return DIR/meta.json, or raise IndexMissing."""
    path = Path(index_dir) / META_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexMissing(f"索引 {index_dir} がありません。") from None
    except (OSError, ValueError):
        raise IndexIncompatible(f"索引 {index_dir} の meta.json が読めません。") from None


def check_meta(meta: dict, index_dir: Path) -> None:
    """Raise IndexIncompatible unless the index was built with our schema and analysis."""
    if (meta.get("schema_version") != SCHEMA_VERSION
            or meta.get("analysis") != ANALYSIS_SETTINGS):
        raise IndexIncompatible(
            f"索引 {index_dir} は別の版（kb {meta.get('kb_version', '?')}）で作られています。",
            hint=f"rebuild it: kb index corpus/ --index {index_dir}")


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def generation_dir(index_dir: Path, meta: dict | None = None) -> Path:
    """Return the folder of the index's current generation."""
    meta = meta or read_meta(index_dir)
    return Path(index_dir) / meta["generation"]


def _prune_generations(index_dir: Path, current: str) -> None:
    gens = sorted(p for p in index_dir.glob(GENERATION_PREFIX + "*") if p.is_dir())
    keep = {current}
    older = [p for p in gens if p.name != current]
    keep.update(p.name for p in older[-(KEEP_GENERATIONS - 1):] if KEEP_GENERATIONS > 1)
    for p in gens:
        if p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)


# --- building ------------------------------------------------------------------------


@dataclass
class BuildStats:
    """What a build did and how long it took."""

    articles: int = 0
    seconds: float = 0.0
    analyse_seconds: float = 0.0
    write_seconds: float = 0.0
    related_seconds: float = 0.0
    generation: str = ""
    extra: dict = field(default_factory=dict)


def article_fields(article: Article, title_morphs: list[Morph] | None = None,
                   body_morphs: list[Morph] | None = None) -> dict:
    """Return the Whoosh document for an article (pre-analysed text when given)."""
    title, body = article.title, article.body
    doc = {
        "id": article.id,
        "title": AnalyzedText(title, title_morphs) if title_morphs is not None else title,
        "body": AnalyzedText(body, body_morphs) if body_morphs is not None else body,
        "_stored_title": str(title),
        "_stored_body": str(body),
        "keywords": " ".join(filter(None, [article.prefecture, article.municipality,
                                           *article.categories, *article.tags])),
        "categories": ",".join(article.categories),
        "tags": ",".join(article.tags),
        "url": article.url,
        "source": article.source,
        "path": article.path,
    }
    if article.date:
        doc["date"] = article.date
        doc["year"] = fiscal_year(dt.date.fromisoformat(article.date))
    if article.prefecture:
        doc["prefecture"] = article.prefecture
    if article.municipality:
        doc["municipality"] = article.municipality
    return {k: v for k, v in doc.items() if v is not None}


def _analyse_pair(pair: tuple[str, str]) -> tuple[list[Morph], list[Morph]]:
    return analyze(pair[0]), analyze(pair[1])


def analyse_articles(articles: Sequence[Article], procs: int = 1,
                     progress: Callable[[int], None] | None = None
                     ) -> list[tuple[list[Morph], list[Morph]]]:
    """Tokenise titles and bodies, in worker processes when procs > 1."""
    pairs = [(a.title, a.body) for a in articles]
    if procs <= 1 or len(pairs) < 50:
        out = []
        for pair in pairs:
            out.append(_analyse_pair(pair))
            if progress:
                progress(1)
        return out
    import multiprocessing as mp

    ctx = mp.get_context("fork" if sys.platform != "win32" else "spawn")
    out = []
    with ctx.Pool(procs) as pool:
        for item in pool.imap(_analyse_pair, pairs, chunksize=16):
            out.append(item)
            if progress:
                progress(1)
    return out


class Progress:
    """A one-line progress bar on a terminal; silent when stderr is not one."""

    def __init__(self, total: int, label: str, stream=None):
        self.total, self.label, self.done = max(total, 1), label, 0
        self.stream = stream or sys.stderr
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0

    def __call__(self, step: int = 1) -> None:
        self.done += step
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.1 or self.done >= self.total):
            self._last = now
            width = 30
            filled = int(width * self.done / self.total)
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                              f"{self.done}/{self.total}")
            if self.done >= self.total:
                self.stream.write("\n")
            self.stream.flush()


def build(articles: Sequence[Article], index_dir: str | Path, *, procs: int | None = None,
          show_progress: bool = True, after_write: Callable[[Path, Sequence[Article], list],
                                                             dict] | None = None) -> BuildStats:
    """Build a complete new index generation from articles and swap it in.

    `after_write(gen_dir, articles, analysed)` may add files to the generation (the
    related-articles model does) before the swap; its dict lands in meta.json.
    """
    started = time.perf_counter()
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    gen_name = f"{GENERATION_PREFIX}{stamp}-{os.getpid()}"
    tmp_dir = index_dir / f".building-{gen_name}"
    stats = BuildStats(articles=len(articles), generation=gen_name)
    procs = procs if procs is not None else min(os.cpu_count() or 1, 4)
    try:
        tmp_dir.mkdir()
        progress = Progress(len(articles), "解析中", ) if show_progress else None
        t0 = time.perf_counter()
        analysed = analyse_articles(articles, procs, progress)
        stats.analyse_seconds = time.perf_counter() - t0

        t0 = time.perf_counter()
        ix = whoosh_index.create_in(str(tmp_dir), make_schema())
        writer = ix.writer(limitmb=256)
        for article, (tm, bm) in zip(articles, analysed):
            writer.add_document(**article_fields(article, tm, bm))
        writer.commit()
        ix.close()
        stats.write_seconds = time.perf_counter() - t0

        extra: dict = {}
        if after_write is not None:
            t0 = time.perf_counter()
            extra = after_write(tmp_dir, articles, analysed) or {}
            stats.related_seconds = time.perf_counter() - t0
        stats.extra = extra
        for name in os.listdir(tmp_dir):
            with open(tmp_dir / name, "rb") as fh:
                os.fsync(fh.fileno())
        os.rename(tmp_dir, index_dir / gen_name)
        _fsync_dir(index_dir)
        meta = {
            "kb_version": __version__,
            "schema_version": SCHEMA_VERSION,
            "analysis": ANALYSIS_SETTINGS,
            "generation": gen_name,
            "built_at": dt.datetime.now().isoformat(timespec="seconds"),
            "articles": len(articles),
            **extra,
        }
        _write_json_atomic(index_dir / META_FILE, meta)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    _prune_generations(index_dir, gen_name)
    for stale in index_dir.glob(".building-*"):
        # a build killed earlier left this behind; ours is already renamed away
        if _is_stale(stale):
            shutil.rmtree(stale, ignore_errors=True)
    stats.seconds = time.perf_counter() - started
    return stats


def _is_stale(path: Path) -> bool:
    """True when a .building-* folder belongs to a process that no longer runs."""
    try:
        pid = int(path.name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return True
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# --- opening and reading -------------------------------------------------------------


class OpenIndex:
    """An opened index generation, with one searcher per thread refreshed on change."""

    def __init__(self, index_dir: str | Path):
        self.index_dir = Path(index_dir)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._load()

    def _load(self) -> None:
        meta = read_meta(self.index_dir)
        check_meta(meta, self.index_dir)
        gen = generation_dir(self.index_dir, meta)
        try:
            ix = whoosh_index.open_dir(str(gen))
        except (whoosh_index.EmptyIndexError, OSError) as exc:
            raise IndexIncompatible(f"索引 {gen} を開けません（{exc}）。") from None
        self.meta, self.generation_path, self.ix = meta, gen, ix
        self.loaded_at = time.time()
        self._meta_mtime = self._stat_meta()

    def _stat_meta(self) -> float:
        try:
            return os.stat(self.index_dir / META_FILE).st_mtime_ns
        except FileNotFoundError:
            return -1

    def refresh(self) -> bool:
        """Reopen when another process swapped in a new generation; True if it did."""
        if self._stat_meta() == self._meta_mtime:
            return False
        with self._lock:
            if self._stat_meta() == self._meta_mtime:
                return False
            old = self.ix
            self._load()
            self._local = threading.local()
            old.close()
            return True

    def searcher(self):
        """Return this thread's searcher, refreshed to the latest commit."""
        s = getattr(self._local, "searcher", None)
        if s is None or getattr(self._local, "ix", None) is not self.ix:
            s = self.ix.searcher()
            self._local.searcher, self._local.ix = s, self.ix
        elif not s.up_to_date():
            # whoosh-reloaded's Searcher.refresh() can resurrect replaced segments
            # (a changed article shows twice): open a fresh searcher instead.
            s.close()
            s = self.ix.searcher()
            self._local.searcher = s
        return s

    def get_article(self, article_id: str) -> dict:
        """Return the stored fields of one article, or raise ArticleNotFound."""
        doc = self.searcher().document(id=article_id)
        if doc is None:
            raise ArticleNotFound(f"記事「{article_id}」は見つかりません。")
        return doc

    def doc_count(self) -> int:
        """Return how many articles the index holds."""
        return self.searcher().doc_count()

    def close(self) -> None:
        """Close the index files."""
        self.ix.close()


# --- incremental updates ------------------------------------------------------------


def update_articles(index_dir: str | Path, articles: Iterable[Article] = (),
                    remove_ids: Iterable[str] = (), timeout: float = 5.0) -> dict:
    """Add or replace articles and remove ids in the current generation, then commit."""
    index_dir = Path(index_dir)
    meta = read_meta(index_dir)
    check_meta(meta, index_dir)
    ix = whoosh_index.open_dir(str(generation_dir(index_dir, meta)))
    try:
        writer = ix.writer(timeout=timeout)
        try:
            added = removed = 0
            for article in articles:
                writer.update_document(**article_fields(article))
                added += 1
            for article_id in remove_ids:
                removed += writer.delete_by_term("id", article_id)
            writer.commit()
        except BaseException:
            writer.cancel()
            raise
    finally:
        ix.close()
    return {"added": added, "removed": removed}
