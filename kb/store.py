"""The write path: an article goes to disk, then into the index, then is acknowledged.

The corpus folder is the source of truth; the index can always be rebuilt from it.
Every write (API, admin page, `kb add`/`kb remove`) runs under the writer lock
(kb/durable.py):
    1. record the intent in DIR/pending.json (so a killed writer is finished next time),
    2. write `<id>.md` atomically (temp file, fsync, rename, fsync the folder),
    3. update the current index generation and flush it,
    4. drop the intent; only now is the write acknowledged.
`recover` finishes what a writer killed between 1 and 4 left; every writer (and
`kb serve`, and `kb index`) runs it first. Rebuilds that keep concurrent writes are in
kb/rebuild.py.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from whoosh import index as whoosh_index

from .corpus import (CATEGORIES_FILE, Article, load_categories, load_file, make_article,
                     markdown_text, parse_markdown, validate_id)
from .durable import (FILE_CLOCK_SLACK_NS, TEMP_SUFFIX, remove_durably, write_atomic,
                      writer_lock)
from .errors import ArticleNotFound, BadArticle, Busy, Conflict, KBError
from .index import check_meta, fsync_tree, generation_dir, read_meta, update_generation

JOURNAL_FILE = "pending.json"
ARTICLE_FIELDS = ("id", "title", "body", "date", "prefecture", "municipality", "categories",
                  "tags", "url", "source")
MAX_TITLE_CHARS = 300
MAX_FIELD_CHARS = 200
MAX_LIST_ITEMS = 50
MAX_BODY_CHARS = 1_000_000
MAX_FILENAME_BYTES = 200  # ext4 and most file systems stop at 255 bytes per name


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
                if name in ("categories", "tags") and isinstance(value, list) and "," in v:
                    # the index keeps them comma-separated: "a,b" would come back as two
                    raise BadArticle(f"{name} の各項目に「,」は使えません（{v[:40]!r}）。")
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


def source_file(stored_path: str | None) -> tuple[Path | None, bool]:
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
            update_index(gen, (), [i for i, _ in plans], self.lock_timeout)
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
                    if target.exists():
                        self._check_holds(target, article.id)
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
                update_index(gen, [a for a, _, _, _ in plans], (), self.lock_timeout)
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
            # Not indexed (yet): the folder is the truth, so a file of that name counts.
            if not default.exists():
                return None
            self._check_holds(default, article_id)
            return default
        path, is_jsonl = source_file(doc.get("path"))
        if path is None or not path.exists():
            if default.exists():
                self._check_holds(default, article_id)
            return default  # indexed, but its file went away: (re)write it in the corpus
        if is_jsonl or not path.is_relative_to(self.corpus_dir):
            raise Conflict(
                f"記事「{article_id}」は {path.name} から読み込まれたもので、ここからは変更できません。",
                hint=f"edit {path} and run `kb index` again")
        return path

    def _check_holds(self, path: Path, article_id: str) -> None:
        """Refuse to overwrite a file that holds another article."""
        held = [a.id for a in load_file(path) if isinstance(a, Article)]
        if article_id not in held:
            raise Conflict(f"ファイル {path.name} には別の記事（{', '.join(held) or '読めない記事'}）"
                           "があるため、上書きしません。",
                           hint=f"rename {path} or run `kb index` if it was edited by hand")

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


def update_index(gen: Path, articles: Sequence[Article], remove_ids: Sequence[str],
                 timeout: float) -> None:
    """Apply articles and removals to one generation; Whoosh's own lock busy is a 503.

    Then fold them into the related-articles overlay (kb.related.after_update): still
    under the writer lock and the journal, so recovery redoes it after a crash.
    """
    from . import related

    articles, remove_ids = list(articles), list(remove_ids)
    try:
        update_generation(gen, articles, remove_ids, timeout=timeout)
    except whoosh_index.LockError:
        # Only a writer outside kb.store can hold Whoosh's own lock while we hold ours.
        raise Busy("索引が別の処理で書き込み中です。しばらくしてから再度お試しください。",
                   retry_after=max(1, math.ceil(timeout / 2))) from None
    related.after_update(gen, articles, remove_ids)


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
    update_index(gen, update, remove, timeout)
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
    # decoded exactly as the loader reads a file (BOM, universal newlines)
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig").read()
    try:
        again = parse_markdown(text, Path(f"{article.id}.md"), categories)
    except KBError as exc:
        raise BadArticle(f"この記事はファイルとして正しく保存できません（{exc.message}）。") from None
    again.path = article.path
    if again != article:
        diff = [k for k, v in article.to_dict().items() if again.to_dict()[k] != v]
        raise BadArticle(f"この記事はファイルとして正しく保存できません"
                         f"（{', '.join(diff)} が読み戻すと変わります）。")
    return data
