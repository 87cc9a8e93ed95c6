"""The durable write path: an article goes to disk, then into the index, then is acknowledged.

The corpus folder is the source of truth; the index can always be rebuilt from it.
Every write (API, admin page, `kb add`/`kb remove`) runs under one writer lock:
    1. record the intent in DIR/pending.json (so a killed writer is finished next time),
    2. write `<id>.md` atomically (temp file, fsync, rename, fsync the folder),
    3. update the current index generation and flush it,
    4. drop the intent; only now is the write acknowledged.
A full rebuild (`rebuild`) reads a snapshot of the corpus without the lock, then takes
the lock around the swap and applies whatever changed in the corpus meanwhile, so a
write made during a rebuild is never lost.

The lock is an fcntl.flock on DIR/write.lock: the kernel releases it when its holder
dies, so a killed writer can never leave a lock that blocks the next one.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import math
import os
import tempfile
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from whoosh import index as whoosh_index

from .corpus import (CATEGORIES_FILE, Article, LoadResult, Problem, corpus_files, load_categories,
                     load_file, load_markdown, load_sources, make_article, markdown_text,
                     validate_id)
from .errors import ArticleNotFound, BadArticle, BadRequest, Busy, Conflict, KBError
from .index import (BuildStats, build, check_meta, fsync_tree, generation_dir, read_meta,
                    update_generation)

LOCK_FILE = "write.lock"
JOURNAL_FILE = "pending.json"
TEMP_SUFFIX = ".kbtmp"
ARTICLE_FIELDS = ("id", "title", "body", "date", "prefecture", "municipality", "categories",
                  "tags", "url", "source")
MAX_TITLE_CHARS = 300
MAX_FIELD_CHARS = 200
MAX_LIST_ITEMS = 50
MAX_BODY_CHARS = 1_000_000
MAX_FILENAME_BYTES = 200  # ext4 and most file systems stop at 255 bytes per name
_thread_counter = threading.local()
_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()
FILE_CLOCK_SLACK_NS = 100_000_000  # file times come from a coarse clock, a tick behind
log = logging.getLogger(__name__)


# --- the writer lock ------------------------------------------------------------------


def _busy(timeout: float) -> Busy:
    return Busy(f"他の書き込みが {timeout:g} 秒以上続いています。しばらくしてから再度お試しください。",
                retry_after=max(1, math.ceil(timeout / 2)))


def _thread_lock(index_dir: Path) -> threading.Lock:
    key = str(index_dir.resolve())
    with _thread_locks_guard:
        return _thread_locks.setdefault(key, threading.Lock())


@contextlib.contextmanager
def writer_lock(index_dir: str | Path, timeout: float) -> Iterator[None]:
    """Hold the index's writer lock; raise Busy (503) when it is not free within timeout.

    Threads of one process queue on a threading.Lock first (it wakes a waiter at once),
    then take the flock that serialises processes.
    """
    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        read_meta(index_dir)  # raises IndexMissing with its hint
    deadline = time.monotonic() + max(timeout, 0.0)
    local = _thread_lock(index_dir)
    if not local.acquire(timeout=max(timeout, 0.0)):
        raise _busy(timeout)
    try:
        fd = os.open(index_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            delay = 0.001
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _busy(timeout)
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, 0.02)
            _note_holder(fd)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    finally:
        local.release()


def _note_holder(fd: int) -> None:
    """Write our pid into the lock file; say so when a killed holder left its pid behind."""
    os.lseek(fd, 0, os.SEEK_SET)
    previous = os.read(fd, 64).decode("ascii", "replace").split()
    if previous and previous[0].isdigit() and not _alive(int(previous[0])):
        # The flock itself died with that process; only its note was left. Clear it.
        log.warning(
            "cleared the writer lock note of process %s, which is no longer running",
            previous[0])
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"{os.getpid()} {time.time():.0f}\n".encode("ascii"))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- durable files --------------------------------------------------------------------


def fsync_dir(directory: Path) -> None:
    """Flush a folder's entries (a rename or an unlink in it) to disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_path(target: Path) -> Path:
    n = getattr(_thread_counter, "n", 0) + 1
    _thread_counter.n = n
    return target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}-{n}"
                            f"{TEMP_SUFFIX}")


def write_atomic(target: Path, data: bytes) -> None:
    """Write data to target so that target is either the old file or the new, whole.

    The new file gets a nanosecond mtime of its own, so a rebuild that took a snapshot
    of the folder always sees that it changed.
    """
    tmp = _temp_path(target)
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            previous = target.stat().st_mtime_ns
        except FileNotFoundError:
            previous = 0
        now = max(time.time_ns(), previous + 1)
        os.utime(tmp, ns=(now, now))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(target.parent)


def remove_durably(path: Path) -> bool:
    """Delete a file and flush its folder; False when it was already gone."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True


# --- validating what callers send -----------------------------------------------------


def _single_line(text: str, name: str) -> None:
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text):
        raise BadArticle(f"{name} に改行や制御文字は使えません（{name} must be one line of text）。")


def normalise_body(body: object) -> object:
    """Return body with CRLF/CR line ends as LF (files read back with universal newlines)."""
    if isinstance(body, str):
        return body.replace("\r\n", "\n").replace("\r", "\n")
    return body


def check_article_data(data: object) -> dict:
    """Reject what make_article would accept but the corpus files cannot hold faithfully."""
    if not isinstance(data, dict):
        raise BadArticle('記事は JSON のオブジェクト {"id", "title", "body", ...} で送ってください。')
    unknown = sorted(str(k)[:40] for k in data if k not in ARTICLE_FIELDS)
    if unknown:
        raise BadArticle(f"知らない項目があります: {', '.join(unknown)}"
                         f"（使える項目: {', '.join(ARTICLE_FIELDS)}）。")
    data = dict(data)
    data["body"] = normalise_body(data.get("body"))
    body = data["body"]
    if isinstance(body, str):
        if len(body) > MAX_BODY_CHARS:
            raise BadArticle(f"本文が長すぎます（{MAX_BODY_CHARS:,} 文字まで）。")
        if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n" for ch in body):
            raise BadArticle("本文に制御文字が含まれています（body contains control characters）。")
    for name in ARTICLE_FIELDS:
        value = data.get(name)
        if name == "body" or value is None:
            continue
        values = value if isinstance(value, list) and name in ("categories", "tags") else [value]
        if len(values) > MAX_LIST_ITEMS:
            raise BadArticle(f"{name} は {MAX_LIST_ITEMS} 個までです。")
        limit = MAX_TITLE_CHARS if name == "title" else MAX_FIELD_CHARS
        for v in values:
            if isinstance(v, str):
                _single_line(v, name)
                if len(v) > limit:
                    raise BadArticle(f"{name} が長すぎます（{limit} 文字まで）。")
    return data


def check_id_as_file_name(article_id: str) -> None:
    """Reject ids that cannot be a corpus file name the loader reads back."""
    name = f"{article_id}.md"
    if len(name.encode("utf-8")) > MAX_FILENAME_BYTES:
        raise BadArticle(f"id が長すぎます（ファイル名として {MAX_FILENAME_BYTES} バイトまで）。")
    if name.upper().startswith("README"):
        raise BadArticle("README で始まる id は使えません（説明ファイルとして読み飛ばされます）。")


# --- the store -------------------------------------------------------------------------


@dataclass
class WriteResult:
    """What a write did: created, replaced or deleted, and the article's file."""

    action: str
    id: str
    path: str | None
    article: dict | None = None

    def to_dict(self) -> dict:
        """Return the result as JSON-ready data."""
        return {"action": self.action, "id": self.id, "article": self.article}


def _source_file(stored_path: str | None) -> tuple[Path | None, bool]:
    """Return (file, is_jsonl) for an indexed article's stored `path` field."""
    if not stored_path:
        return None, False
    head, sep, tail = stored_path.rpartition(":")
    if sep and tail.isdigit() and head.lower().endswith(".jsonl"):
        return Path(head).resolve(), True
    return Path(stored_path).resolve(), False


class Store:
    """Writes articles to the corpus folder and the index, serialised by the writer lock."""

    def __init__(self, corpus_dir: str | Path, index_dir: str | Path, lock_timeout: float = 10.0):
        self.corpus_dir = Path(corpus_dir).resolve()
        self.index_dir = Path(index_dir)
        self.lock_timeout = float(lock_timeout)

    # -- public operations --

    def create(self, data: dict) -> WriteResult:
        """Add a new article (Conflict when the id exists)."""
        return self._write_many([data], mode="create")[0]

    def replace(self, article_id: str, data: dict) -> WriteResult:
        """Replace an existing article (ArticleNotFound when it does not exist)."""
        data = dict(data) if isinstance(data, dict) else data
        if isinstance(data, dict):
            given = data.setdefault("id", article_id)
            if given != article_id:
                raise BadArticle(f"本文中の id「{str(given)[:40]}」が URL の id と違います"
                                 "（id は変更できません。新しい id で追加し、古い記事を削除してください）。")
        return self._write_many([data], mode="replace")[0]

    def upsert(self, items: Sequence[dict | Article]) -> list[WriteResult]:
        """Add or replace several articles under one lock and one index commit."""
        return self._write_many(items, mode="upsert")

    def delete(self, article_ids: Iterable[str]) -> list[WriteResult]:
        """Delete articles (ArticleNotFound when one does not exist; then none is deleted)."""
        ids = [self._check_url_id(i) for i in article_ids]
        with writer_lock(self.index_dir, self.lock_timeout):
            gen = self._prepare()
            plans = []
            for article_id in ids:
                current = self._locate(gen, article_id)
                if current is None:
                    raise ArticleNotFound(f"記事「{article_id}」は見つかりません。")
                plans.append((article_id, current))
            self._journal([{"id": i, "target": None, "old": str(p)} for i, p in plans])
            started = time.time_ns()
            for _, path in plans:
                remove_durably(path)
            _update(gen, (), [i for i, _ in plans], self.lock_timeout)
            self._flush(gen, started)
        return [WriteResult("deleted", i, str(p)) for i, p in plans]

    def recover(self) -> list[str]:
        """Finish (or undo) what a killed writer left; return the ids it touched."""
        with writer_lock(self.index_dir, self.lock_timeout):
            meta = read_meta(self.index_dir)
            check_meta(meta, self.index_dir)
            return recover(self.index_dir, generation_dir(self.index_dir, meta),
                           self.lock_timeout)

    # -- the write path --

    def _check_url_id(self, article_id: object) -> str:
        checked = validate_id(article_id)
        if checked != article_id:
            raise BadArticle(f"id {str(article_id)[:40]!r} に前後の空白は使えません。")
        check_id_as_file_name(checked)
        return checked

    def _article(self, item: dict | Article, categories: frozenset[str] | None) -> Article:
        if isinstance(item, Article):
            item = {k: v for k, v in item.to_dict().items() if k != "path"}
        data = check_article_data(item)
        self._check_url_id(data.get("id"))
        return make_article(data, categories)

    def _write_many(self, items: Sequence[dict | Article], mode: str) -> list[WriteResult]:
        categories = self._categories()
        articles = [self._article(item, categories) for item in items]
        ids = [a.id for a in articles]
        if len(set(ids)) != len(ids):
            raise BadArticle("同じ id の記事が複数あります。")
        texts = [check_round_trip(a, categories) for a in articles]
        with writer_lock(self.index_dir, self.lock_timeout):
            gen = self._prepare()
            plans = []
            for article, text in zip(articles, texts):
                current = self._locate(gen, article.id)
                if mode == "create" and current is not None:
                    raise Conflict(f"記事「{article.id}」はすでにあります（更新は PUT で）。")
                if mode == "replace" and current is None:
                    raise ArticleNotFound(f"記事「{article.id}」は見つかりません（追加は POST で）。")
                if current is None:
                    target = self.corpus_dir / f"{article.id}.md"
                elif current.suffix == ".md":
                    target = current  # keep the file where it is, even under another name
                else:
                    target = current.with_name(f"{article.id}.md")  # .txt/.html become .md
                article.path = str(target)
                plans.append((article, text, target, current))
            self._journal([{"id": a.id, "target": str(t), "old": str(c) if c else None}
                           for a, _, t, c in plans])
            started = time.time_ns()
            done: list[tuple[Path, bytes | None]] = []
            try:
                for article, text, target, current in plans:
                    done.append((target, _read_or_none(target)))
                    write_atomic(target, text)
                    if current is not None and current != target:
                        done.append((current, current.read_bytes()))
                        remove_durably(current)
                _update(gen, [a for a, _, _, _ in plans], (), self.lock_timeout)
            except BaseException:
                # Put the files back, then let the journal bring the index in line with them.
                _roll_back(done)
                with contextlib.suppress(Exception):
                    recover(self.index_dir, gen, self.lock_timeout)
                raise
            self._flush(gen, started)
        return [WriteResult("created" if c is None else "replaced", a.id, str(t),
                            {k: v for k, v in a.to_dict().items() if k != "path"})
                for a, _, t, c in plans]

    def _categories(self) -> frozenset[str] | None:
        try:
            return load_categories(self.corpus_dir)
        except (BadArticle, ValueError) as exc:
            raise Conflict(f"{self.corpus_dir / CATEGORIES_FILE} が読めません: {exc}") from None

    def _prepare(self) -> Path:
        """Under the lock: check the index, finish a killed writer's work, return the generation."""
        meta = read_meta(self.index_dir)
        check_meta(meta, self.index_dir)
        sources = meta.get("sources")
        if sources and not any(self.corpus_dir.is_relative_to(Path(s)) for s in sources):
            raise Conflict(
                f"書き込み先 {self.corpus_dir} はこの索引の元の記事フォルダではありません"
                f"（索引の元: {', '.join(sources)}）。作り直すと書き込みが失われるため拒否しました。",
                hint="set KB_CORPUS to the folder the index is built from, or rebuild from it")
        if not self.corpus_dir.is_dir():
            raise Conflict(f"記事フォルダ {self.corpus_dir} がありません。",
                           hint="create it or set KB_CORPUS")
        gen = generation_dir(self.index_dir, meta)
        recover(self.index_dir, gen, self.lock_timeout)
        return gen

    def _locate(self, gen: Path, article_id: str) -> Path | None:
        """Return the file an existing article lives in, or None when it does not exist."""
        ix = whoosh_index.open_dir(str(gen))
        try:
            with ix.searcher() as s:
                doc = s.document(id=article_id)
        finally:
            ix.close()
        default = self.corpus_dir / f"{article_id}.md"
        if doc is None:
            return default if default.exists() else None
        path, is_jsonl = _source_file(doc.get("path"))
        if path is None or not path.exists():
            return default  # indexed, but its file went away: (re)write it in the corpus
        if is_jsonl or not path.is_relative_to(self.corpus_dir):
            raise Conflict(
                f"記事「{article_id}」は {path.name} から読み込まれたもので、ここからは変更できません。",
                hint=f"edit {path} and run `kb index` again")
        return path

    def _journal(self, entries: list[dict]) -> None:
        data = json.dumps({"pid": os.getpid(), "corpus": str(self.corpus_dir),
                           "entries": entries}, ensure_ascii=False)
        write_atomic(self.index_dir / JOURNAL_FILE, data.encode("utf-8"))

    def _flush(self, gen: Path, since_ns: int) -> None:
        flush(self.index_dir, gen, since_ns)


def flush(index_dir: Path, gen: Path, since_ns: int) -> None:
    """Make an index commit durable, then drop the intent: the write is done."""
    fsync_tree(gen, since_ns - FILE_CLOCK_SLACK_NS)
    remove_durably(Path(index_dir) / JOURNAL_FILE)


def _update(gen: Path, articles: Sequence[Article], remove_ids: Sequence[str],
            timeout: float) -> None:
    try:
        update_generation(gen, articles, remove_ids, timeout=timeout)
    except whoosh_index.LockError:
        # Only a writer outside kb.store can hold Whoosh's own lock while we hold ours.
        raise Busy("索引が別の処理で書き込み中です。しばらくしてから再度お試しください。",
                   retry_after=max(1, math.ceil(timeout / 2))) from None


def recover(index_dir: str | Path, gen: Path, timeout: float = 10.0) -> list[str]:
    """Under the writer lock: make the index agree with the files a killed writer changed.

    Also removes the temp files a killed writer left. Returns the ids it looked at.
    """
    index_dir = Path(index_dir)
    for stale in index_dir.glob(f".*{TEMP_SUFFIX}"):
        stale.unlink(missing_ok=True)
    journal = index_dir / JOURNAL_FILE
    try:
        data = json.loads(journal.read_text(encoding="utf-8"))
        entries, corpus_dir = data["entries"], Path(data["corpus"])
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError):
        # written atomically, so unreadable means damaged on disk: nothing we can finish
        remove_durably(journal)
        return []
    if corpus_dir.is_dir():
        for stale in corpus_dir.rglob(f".*{TEMP_SUFFIX}"):
            stale.unlink(missing_ok=True)  # never renamed in, so never acknowledged
    try:
        categories = load_categories(corpus_dir)
    except (BadArticle, ValueError):
        categories = None
    update, remove = [], []
    for entry in entries:
        target = Path(entry["target"]) if entry.get("target") else None
        old = Path(entry["old"]) if entry.get("old") else None
        if target is not None and target.exists() and old is not None and old != target:
            remove_durably(old)  # the new file is whole (renamed in): finish the move
        found = None
        for path in (target, old):
            if path is not None and path.exists():
                found = next((a for a in load_file(path, categories)
                              if isinstance(a, Article) and a.id == entry["id"]), None)
                if found is not None:
                    found.path = str(path)
                    break
        if found is not None:
            update.append(found)
        else:
            remove.append(entry["id"])
    started = time.time_ns()
    _update(gen, update, remove, timeout)
    flush(index_dir, gen, started)
    return [e["id"] for e in entries]


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _roll_back(done: list[tuple[Path, bytes | None]]) -> None:
    """Put back the files a failed write changed (best effort; the journal covers a crash)."""
    for path, old in reversed(done):
        with contextlib.suppress(OSError):
            if old is None:
                remove_durably(path)
            else:
                write_atomic(path, old)


def check_round_trip(article: Article, categories: frozenset[str] | None) -> bytes:
    """Return the article's file bytes, after checking they load back as this very article."""
    data = markdown_text(article).encode("utf-8")
    with tempfile.TemporaryDirectory(prefix="kb-check-") as tmp:
        path = Path(tmp) / f"{article.id}.md"
        path.write_bytes(data)
        try:
            again = load_markdown(path, categories)
        except KBError as exc:
            raise BadArticle(f"この記事はファイルとして正しく保存できません（{exc.message}）。") from None
    again.path = article.path
    if again != article:
        diff = [k for k, v in article.to_dict().items() if again.to_dict()[k] != v]
        raise BadArticle(f"この記事はファイルとして正しく保存できません"
                         f"（{', '.join(diff)} が読み戻すと変わります）。")
    return data


# --- full rebuilds that keep concurrent writes -------------------------------------------


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
    file, _ = _source_file(article.path)
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
                _update(tmp_dir, changed, removed, lock_timeout)
                fsync_tree(tmp_dir, started - FILE_CLOCK_SLACK_NS)
            applied.update(changed=len(changed), removed=len(removed))
            yield

    stats = build(loaded.articles, index_dir, procs=procs, show_progress=show_progress,
                  features=related.features, after_write=after_write, around_swap=around_swap)
    return loaded, stats, applied


def problems_text(problems: Sequence[Problem]) -> list[str]:
    """Return one line per skipped file or line."""
    return [f"skipped {p}" for p in problems]
