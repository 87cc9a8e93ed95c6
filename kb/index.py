"""The Whoosh index: schema, build, update and open (the one place Whoosh is written).

Layout of an index folder DIR:
    DIR/meta.json        package version, analysis settings, current generation
    DIR/gen-<stamp>/     one complete index (Whoosh files, related model)
A build writes a new generation beside the old one and swaps it in by replacing
meta.json atomically, so a failed or killed build leaves the previous index serving.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from operator import sub
from pathlib import Path
from pickle import dumps
from typing import Callable, Iterable, Sequence

from whoosh import index as whoosh_index
from whoosh.fields import ID, KEYWORD, NUMERIC, STORED, TEXT, Schema
from whoosh.system import pack_uint
from whoosh.filedb.filestore import FileStorage
from whoosh.index import TOC, clean_files

from . import __version__, segmentfiles
from .analysis import (ANALYSIS_VERSION, STOP_TAGS, Morph, analyze, bigram_analyzer, char_grams,
                       sudachi_analyzer)
from .bulkwrite import BulkSegmentWriter
from .corpus import Article
from .errors import ArticleNotFound, IndexIncompatible, IndexMissing
from .readings import reading_tokens
from .years import fiscal_year

segmentfiles.install()  # searchers share the mapped segment files instead of copying them

SCHEMA_VERSION = 2
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


class PostedText(str):
    """A field value whose postings were computed in a worker process."""

    postings: list

    def __new__(cls, text: str, postings: list) -> "PostedText":
        obj = super().__new__(cls, text)
        obj.postings = postings
        return obj


class PreAnalysedText(TEXT):
    """A TEXT field that takes ready-made postings (bulk builds) or analyses as usual."""

    def index(self, value, **kwargs):
        postings = getattr(value, "postings", None)
        if postings is not None:
            return iter(postings)
        return super().index(value, **kwargs)


# shared objects for the small counts most postings have (speed, and memory while grouped)
_FLOATS = tuple(float(n) for n in range(256))
_PACKED = tuple(pack_uint(n) for n in range(256))


def postings(morphs: list[Morph]) -> list[tuple[bytes, int, float, bytes]]:
    """Return Whoosh's (term, freq, weight, encoded positions) rows for one field.

    The same rows Whoosh's Positions format would make (Positions.encode, inlined),
    computed where the tokenising happened so the writer only groups them.
    """
    positions: dict[str, list[int]] = defaultdict(list)
    for m in morphs:
        positions[m.text].append(m.position)
    rows = []
    for term, p in positions.items():
        n = len(p)
        if n == 1:
            value = _PACKED[1] + dumps(p, 2)
        else:
            deltas = [p[0], *map(sub, p[1:], p[:-1])]
            value = (_PACKED[n] if n < 256 else pack_uint(n)) + dumps(deltas, 2)
        rows.append((term.encode("utf-8"), n, _FLOATS[n] if n < 256 else float(n), value))
    return rows


def make_schema() -> Schema:
    """Return the index schema."""
    text = sudachi_analyzer()
    return Schema(
        id=ID(stored=True, unique=True),
        title=PreAnalysedText(analyzer=text, stored=True, phrase=True),
        body=PreAnalysedText(analyzer=text, stored=True, phrase=True),
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
        # for search (kb/ranking.py scores title and body as one field, from their postings):
        # character bigrams of title and body, for words Sudachi segments differently
        grams=PreAnalysedText(analyzer=bigram_analyzer(), phrase=False),
        # "READING:term" for proper nouns, so かけがわ finds 掛川 (kb/readings.py)
        yomi=KEYWORD(commas=True, scorable=False),
    )


def search_fields(title: str, body: str, title_morphs: list[Morph],
                  body_morphs: list[Morph]) -> dict:
    """Return the postings of the bigram field and the yomi tokens of an article."""
    grams = Counter(char_grams(title))
    grams.update(char_grams(body))
    return {
        "grams": [(g.encode("utf-8"), n, _FLOATS[n], _PACKED[n]) if n < 256
                  else (g.encode("utf-8"), n, float(n), pack_uint(n)) for g, n in grams.items()],
        "yomi": ",".join(reading_tokens(title_morphs + body_morphs)),
    }


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
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Flush a folder's entries (a rename or an unlink in it) to disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path, since_ns: int = 0) -> None:
    """Flush the files under folder (those modified at or after since_ns) and the folder."""
    for path in Path(folder).rglob("*"):
        try:
            if path.is_file() and path.stat().st_mtime_ns >= since_ns:
                with open(path, "rb") as fh:
                    os.fsync(fh.fileno())
        except FileNotFoundError:  # Whoosh removed a merged segment meanwhile
            continue
    fsync_dir(Path(folder))


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
    write_seconds: float = 0.0
    related_seconds: float = 0.0
    generation: str = ""
    extra: dict = field(default_factory=dict)


def article_fields(article: Article, title_postings: list | None = None,
                   body_postings: list | None = None, derived: dict | None = None) -> dict:
    """Return the Whoosh document for an article (with ready-made postings when given)."""
    title, body = article.title, article.body
    if derived is None:
        derived = search_fields(title, body, analyze(title), analyze(body))
    doc = {
        "id": article.id,
        "title": PostedText(title, title_postings) if title_postings is not None else title,
        "body": PostedText(body, body_postings) if body_postings is not None else body,
        "_stored_title": str(title),
        "_stored_body": str(body),
        "keywords": " ".join(filter(None, [article.prefecture, article.municipality,
                                           *article.categories, *article.tags])),
        "categories": ",".join(article.categories),
        "tags": ",".join(article.tags),
        "url": article.url,
        "source": article.source,
        "path": article.path,
        "grams": PostedText("", derived["grams"]),
        "yomi": derived["yomi"] or None,
    }
    if article.date:
        doc["date"] = article.date
        doc["year"] = fiscal_year(dt.date.fromisoformat(article.date))
    if article.prefecture:
        doc["prefecture"] = article.prefecture
    if article.municipality:
        doc["municipality"] = article.municipality
    return {k: v for k, v in doc.items() if v is not None}


def _analyse_one(job: tuple[str, str, Callable | None]) -> tuple[list, list, object, dict]:
    """Tokenise one article once; return its postings and its features."""
    title, body, features = job
    tm, bm = analyze(title), analyze(body)
    extra = features(tm, bm) if features is not None else (tm, bm)
    return postings(tm), postings(bm), extra, search_fields(title, body, tm, bm)


# Set in the parent just before forking, so workers read the articles for free.
_shard_articles: Sequence[Article] = ()
_shard_done = None  # a multiprocessing.Value counting finished articles (progress)


# A worker writes out a segment once it holds this many postings of the big fields,
# so its memory stays bounded whatever the corpus size: grouped postings take about
# 60 bytes each (a livedoor article has about 1,000): 3M keep a worker near 500 MB
# RSS, most of it the dictionary and articles it shares with the parent.
FLUSH_POSTINGS = 3_000_000


def _write_shard(job: tuple[str, int, int, Callable | None]) -> tuple[list, list]:
    """Analyse articles[start:end] and write them as Whoosh segments of the index.

    Each worker tokenises and writes its own segments, so both the tokenising and
    the posting work use every core; the parent only lists the segments. A segment
    is written every FLUSH_POSTINGS postings. Segments are written by
    kb.bulkwrite.BulkSegmentWriter (whoosh-reloaded is pinned to 2.7.5).
    """
    index_path, start, end, features = job
    ix = whoosh_index.open_dir(index_path)
    segments, extras, writer = [], [], None
    common: dict[tuple[str, bytes], int] = {}

    def finish(writer) -> None:
        segments.append(writer.finish())
        for name, terms in writer.common.items():
            for count, term in terms:
                common[name, term] = common.get((name, term), 0) + count

    try:
        for article in _shard_articles[start:end]:
            tp, bp, extra, derived = _analyse_one((article.title, article.body, features))
            if writer is None:
                writer = BulkSegmentWriter(ix)
            writer.add_document(**article_fields(article, tp, bp, derived))
            extras.append(extra)
            if writer.postings >= FLUSH_POSTINGS:
                finish(writer)
                writer = None
            if _shard_done is not None:
                with _shard_done.get_lock():
                    _shard_done.value += 1
        if writer is not None:
            finish(writer)
            writer = None
        # no SegmentWriter._finish(): it would delete the temp folder other shards share
    except BaseException:
        if writer is not None:
            writer.cancel()
        raise
    finally:
        ix.close()
    return [seg for seg in segments if seg is not None], extras, common


def _shards(articles: Sequence[Article], n: int) -> list[tuple[int, int]]:
    """Cut articles into n contiguous ranges of about equal text length."""
    sizes = [len(a.title) + len(a.body) for a in articles]
    total, bounds, acc, start = sum(sizes) or 1, [], 0, 0
    for i, size in enumerate(sizes):
        acc += size
        if acc * n >= total * (len(bounds) + 1) and len(bounds) < n - 1:
            bounds.append((start, i + 1))
            start = i + 1
    bounds.append((start, len(articles)))
    return [b for b in bounds if b[1] > b[0]]


def write_segments(tmp_dir: Path, articles: Sequence[Article], procs: int,
                   features: Callable | None, progress: "Progress | None") -> list:
    """Fill a fresh index at tmp_dir with the articles; return per-article features."""
    global _shard_articles, _shard_done
    shards = _shards(articles, procs if len(articles) >= 64 else 1)
    jobs = [(str(tmp_dir), a, b, features) for a, b in shards]
    _shard_articles = articles
    try:
        if len(jobs) == 1:
            results = [_write_shard(jobs[0])]
            if progress:
                progress(len(articles))
        else:
            import multiprocessing as mp

            ctx = mp.get_context("fork")
            _shard_done = ctx.Value("i", 0)
            with ctx.Pool(len(jobs)) as pool:
                pending = pool.map_async(_write_shard, jobs, chunksize=1)
                while not pending.ready():
                    pending.wait(0.2)
                    if progress:
                        progress(_shard_done.value - progress.done)
                results = pending.get()
            if progress:
                progress(len(articles) - progress.done)
    finally:
        _shard_articles, _shard_done = (), None
    # The folder is private to this build, so no lock: list the shards' segments
    # in a new table of contents, as a Whoosh commit would.
    segments = [seg for segs, _, _ in results for seg in segs]
    storage = FileStorage(str(tmp_dir))
    TOC(make_schema(), segments, 1).write(storage, whoosh_index._DEF_INDEX_NAME)
    clean_files(storage, whoosh_index._DEF_INDEX_NAME, 1, segments)
    for temp in tmp_dir.glob("*.tmp"):
        shutil.rmtree(temp, ignore_errors=True)
    _write_common_terms(tmp_dir, [common for _, _, common in results])
    return [extra for _, extras, _ in results for extra in extras]


COMMON_TERMS_FILE = "common-terms.json"


def _write_common_terms(gen_dir: Path, parts: list[dict]) -> None:
    """Record each field's commonest terms (kb.search.warm_caches reads them)."""
    total: dict[tuple[str, bytes], int] = {}
    for part in parts:
        for key, count in part.items():
            total[key] = total.get(key, 0) + count
    fields: dict[str, list] = {}
    for (name, term), count in sorted(total.items(), key=lambda kv: -kv[1]):
        fields.setdefault(name, []).append(term.decode("utf-8"))
    with open(gen_dir / COMMON_TERMS_FILE, "w", encoding="utf-8") as fh:
        json.dump(fields, fh, ensure_ascii=False)


def common_terms(gen_dir: Path) -> dict[str, list[str]]:
    """Each field's commonest terms as the build recorded them ({} for older indexes)."""
    try:
        return json.loads((Path(gen_dir) / COMMON_TERMS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


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
          show_progress: bool = True,
          features: Callable[[list[Morph], list[Morph]], object] | None = None,
          after_write: Callable[[Path, Sequence[Article], list], dict] | None = None,
          around_swap: Callable[[Path], contextlib.AbstractContextManager] | None = None
          ) -> BuildStats:
    """Build a complete new index generation from articles and swap it in.

    `after_write(gen_dir, articles, analysed)` may add files to the generation (the
    related-articles model does) before the swap; its dict lands in meta.json.
    `analysed[i]` is `features(title_morphs, body_morphs)` for article i, computed
    in the tokenising worker (or the morph pair itself when no `features` is given).
    `around_swap(gen_dir)` is entered just before the swap and left after it: kb.store
    holds the writer lock there and applies the writes made during the build.
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
        progress = Progress(len(articles), "索引作成中") if show_progress else None
        t0 = time.perf_counter()
        whoosh_index.create_in(str(tmp_dir), make_schema()).close()
        analysed = write_segments(tmp_dir, articles, procs, features, progress)
        stats.write_seconds = time.perf_counter() - t0

        extra: dict = {}
        if after_write is not None:
            t0 = time.perf_counter()
            extra = after_write(tmp_dir, articles, analysed) or {}
            stats.related_seconds = time.perf_counter() - t0
        stats.extra = extra
        fsync_tree(tmp_dir)
        with around_swap(tmp_dir) if around_swap else contextlib.nullcontext():
            os.rename(tmp_dir, index_dir / gen_name)
            fsync_dir(index_dir)
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
            # still under around_swap: no other build can swap in between and be pruned
            _prune_generations(index_dir, gen_name)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
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
        self._searchers: set = set()  # every thread's, so close() can close them all
        self._retired: set = set()  # of the previous generation: a request may still use one
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

    def _stat_meta(self) -> tuple[int, int]:
        # the inode too: two swaps within one clock tick share an mtime, never an inode
        try:
            st = os.stat(self.index_dir / META_FILE)
        except FileNotFoundError:
            return (-1, -1)
        return (st.st_ino, st.st_mtime_ns)

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
            # Searchers two generations old are no longer used by any request.
            for searcher in self._retired:
                searcher.close()
            self._retired, self._searchers = self._searchers, set()
            old.close()
            return True

    def searcher(self):
        """Return this thread's searcher, refreshed to the latest commit."""
        s = getattr(self._local, "searcher", None)
        if s is None or getattr(self._local, "ix", None) is not self.ix:
            s = self._open_searcher()
            self._local.searcher, self._local.ix = s, self.ix
        elif not s.up_to_date():
            # whoosh-reloaded's Searcher.refresh() can resurrect replaced segments
            # (a changed article shows twice): open a fresh searcher instead.
            with self._lock:
                self._searchers.discard(s)
            s.close()
            s = self._open_searcher()
            self._local.searcher = s
        return s

    def _open_searcher(self):
        s = self.ix.searcher()
        with self._lock:
            self._searchers.add(s)
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
        """Close every thread's searcher and the index files."""
        with self._lock:
            for searcher in (*self._searchers, *self._retired):
                searcher.close()
            self._searchers, self._retired = set(), set()
        self.ix.close()


# --- incremental updates ------------------------------------------------------------


def update_articles(index_dir: str | Path, articles: Iterable[Article] = (),
                    remove_ids: Iterable[str] = (), timeout: float = 5.0) -> dict:
    """Add or replace articles and remove ids in the current generation, then commit."""
    index_dir = Path(index_dir)
    meta = read_meta(index_dir)
    check_meta(meta, index_dir)
    return update_generation(generation_dir(index_dir, meta), articles, remove_ids, timeout)


MERGE_FACTOR = 10  # merge ten segments of one size tier (1-9, 10-99, ... articles) into one
# A build writes segments of a few thousand articles each; merging ten of those would
# rewrite tens of thousands of articles in pure Python under the writer lock, so
# commits merge only the small segments writes make. A rebuild compacts the rest.
MERGE_MAX_ARTICLES = 1000


def merge_small_segments(writer, segments: list) -> list:
    """Whoosh merge policy for incremental commits: tiered, like Lucene's log merge policy.

    Whoosh's default (MERGE_SMALL) merges the big segments of the last build every few
    commits, rewriting the whole index under the writer lock: seconds for a hundred
    articles, minutes for thousands. Here a commit merges only when ten segments of one
    size tier (by powers of ten) have piled up, smallest tier first, so the work per
    article written stays logarithmic and the build's segments are left alone until
    thousands of writes have accumulated beside them.
    """
    from whoosh.reading import SegmentReader

    tiers: dict[int, list] = {}
    for seg in segments:
        if seg.doc_count_all() < MERGE_MAX_ARTICLES:
            tiers.setdefault(len(str(max(seg.doc_count_all(), 1))), []).append(seg)
    for tier in sorted(tiers):
        group = tiers[tier]
        if len(group) >= MERGE_FACTOR:
            for seg in group:
                reader = SegmentReader(writer.storage, writer.schema, seg)
                writer.add_reader(reader)
                reader.close()
            return [seg for seg in segments if seg not in group]
    return segments


def update_generation(gen_dir: str | Path, articles: Iterable[Article] = (),
                      remove_ids: Iterable[str] = (), timeout: float = 5.0) -> dict:
    """Add or replace articles and remove ids in one generation folder, then commit."""
    ix = whoosh_index.open_dir(str(gen_dir))
    try:
        writer = ix.writer(timeout=timeout)
        try:
            added = removed = 0
            for article in articles:
                writer.update_document(**article_fields(article))
                added += 1
            for article_id in remove_ids:
                removed += writer.delete_by_term("id", article_id)
            writer.commit(mergetype=merge_small_segments)
        except BaseException:
            writer.cancel()
            raise
    finally:
        ix.close()
    return {"added": added, "removed": removed}
