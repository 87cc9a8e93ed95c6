"""Full rebuilds that keep concurrent writes: `kb index` while the API is writing.

The build reads a snapshot of the corpus folder without the writer lock (that takes
long), then takes the lock only around the swap: it finishes a killed writer's work,
applies every file that changed since the snapshot to the new generation, and swaps it
in. A write acknowledged before the swap is therefore in the new index, and one made
after it goes to the new index directly.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Sequence

from .corpus import (CATEGORIES_FILE, Article, LoadResult, corpus_files, load_categories,
                     load_file, load_sources)
from .durable import FILE_CLOCK_SLACK_NS, writer_lock
from .errors import BadArticle, BadRequest, KBError
from .index import BuildStats, build, check_meta, fsync_tree, generation_dir, read_meta
from .store import recover, source_file, update_index


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def snapshot(sources: Sequence[Path]) -> dict[Path, tuple]:
    """Stat every file a build of sources reads (and each categories.yml)."""
    snap: dict[Path, tuple] = {}
    for source in sources:
        base = source if source.is_dir() else source.parent
        snap[base / CATEGORIES_FILE] = _stat_key(base / CATEGORIES_FILE)
        if source.exists():
            for path in corpus_files(source):
                snap[path] = _stat_key(path)
    return snap


def _file_of(article: Article) -> Path:
    file, _ = source_file(article.path)
    return file


def catch_up(sources: Sequence[Path], before: dict[Path, tuple],
             loaded: Sequence[Article]) -> tuple[list[Article], list[str]]:
    """Return (articles to add or replace, ids to remove) for files changed since `before`.

    Loads only the changed files, then resolves duplicate ids as load_sources does
    (first in reading order wins), so the result equals a fresh full load.
    """
    after = snapshot(sources)
    if after == before:
        return [], []
    by_file: dict[Path, list[Article]] = {}
    for article in loaded:
        by_file.setdefault(_file_of(article), []).append(article)
    cats_changed = any(p.name == CATEGORIES_FILE and before.get(p) != after.get(p) for p in after)
    if cats_changed:
        final_list = load_sources(sources).articles
    else:
        final_list, seen = [], set()
        for source in sources:
            try:
                categories = load_categories(source if source.is_dir() else source.parent)
            except (BadArticle, ValueError, OSError):
                categories = None
            for path in (corpus_files(source) if source.exists() else ()):
                if path in before and before[path] == after.get(path):
                    items = by_file.get(path.resolve(), [])
                else:
                    items = [a for a in load_file(path, categories) if isinstance(a, Article)]
                for a in items:
                    if a.id not in seen:
                        seen.add(a.id)
                        final_list.append(a)
    old = {a.id: a for a in loaded}
    final = {a.id: a for a in final_list}
    changed = [a for i, a in final.items() if old.get(i) != a]
    removed = [i for i in old if i not in final]
    return changed, removed


def rebuild(sources: Sequence[str | Path], index_dir: str | Path, *, procs: int | None = None,
            show_progress: bool = True, lock_timeout: float = 60.0,
            on_loaded=None) -> tuple[LoadResult, BuildStats, dict]:
    """Build a new generation from sources and swap it in without losing concurrent writes.

    Returns the load result, the build statistics and what the catch-up applied.
    `on_loaded(result)` runs once the snapshot is read (the CLI reports problems there).
    """
    from . import related

    sources = [Path(s).resolve() for s in sources]
    index_dir = Path(index_dir)
    before = snapshot(sources)
    loaded = load_sources(sources)
    if on_loaded is not None:
        on_loaded(loaded)
    if not loaded.articles:
        raise BadRequest("読み込める記事がありません。索引は作り直していません。",
                         hint="check the paths and the problems listed above")
    applied: dict = {"changed": 0, "removed": 0}

    def after_write(gen_dir, articles, analysed) -> dict:
        extra = related.after_write(gen_dir, articles, analysed) or {}
        return {**extra, "sources": [str(s) for s in sources]}

    @contextlib.contextmanager
    def around_swap(tmp_dir: Path):
        index_dir.mkdir(parents=True, exist_ok=True)
        with writer_lock(index_dir, lock_timeout):
            started = time.time_ns()
            try:
                meta = read_meta(index_dir)
                check_meta(meta, index_dir)
            except KBError:
                meta = None  # first build, or one replacing an incompatible index
            if meta is not None:
                # finish a killed writer's work first, so the catch-up sees its files
                recover(index_dir, generation_dir(index_dir, meta), lock_timeout)
            changed, removed = catch_up(sources, before, loaded.articles)
            if changed or removed:
                update_index(tmp_dir, changed, removed, lock_timeout)
                fsync_tree(tmp_dir, started - FILE_CLOCK_SLACK_NS)
            applied.update(changed=len(changed), removed=len(removed))
            yield

    stats = build(loaded.articles, index_dir, procs=procs, show_progress=show_progress,
                  features=related.features, after_write=after_write, around_swap=around_swap)
    return loaded, stats, applied
