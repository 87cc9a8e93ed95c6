"""Articles and the loaders that read them: Markdown, plain text, HTML and JSON Lines.

A broken file or line is reported (file, line, reason) and skipped; the rest loads.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterable, Iterator

import yaml

from .errors import BadArticle

PREFECTURES: tuple[str, ...] = (
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県",
    "茨城県", "栃木県", "群馬県", "埼玉県", "千葉県", "東京都", "神奈川県",
    "新潟県", "富山県", "石川県", "福井県", "山梨県", "長野県", "岐阜県",
    "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府", "兵庫県",
    "奈良県", "和歌山県", "鳥取県", "島根県", "岡山県", "広島県", "山口県",
    "徳島県", "香川県", "愛媛県", "高知県", "福岡県", "佐賀県", "長崎県",
    "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県",
)
NATIONWIDE = "全国"
SUFFIXES = (".md", ".txt", ".html", ".htm", ".jsonl")
CATEGORIES_FILE = "categories.yml"
MAX_ID_LENGTH = 128
# Ids appear in URLs and file names: word characters (Japanese included), dot, hyphen.
_ID_RE = re.compile(r"^\w[\w.\-]*$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)


@dataclass
class Article:
    """One case study or article in the knowledge base."""

    id: str
    title: str
    body: str
    date: str | None = None  # ISO YYYY-MM-DD
    prefecture: str | None = None
    municipality: str | None = None
    categories: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    url: str | None = None
    source: str | None = None
    path: str | None = None  # where it was read from (not part of the content)

    def to_dict(self) -> dict:
        """Return the article as plain JSON-ready data."""
        return asdict(self)


@dataclass
class Problem:
    """Why one file (or one line of it) was skipped."""

    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.reason}"


@dataclass
class LoadResult:
    """The articles read from some sources and the problems met on the way."""

    articles: list[Article] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: int = 0

    def summary(self) -> str:
        """One line: how much loaded and how much was skipped."""
        return (f"{len(self.articles)} articles from {self.files} files, "
                f"{len(self.problems)} skipped")


# --- validation --------------------------------------------------------------------


def validate_id(value: object) -> str:
    """Return a safe article id or raise BadArticle."""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise BadArticle("id must be a string")
    text = str(value).strip()
    if not text or len(text) > MAX_ID_LENGTH or not _ID_RE.match(text) or ".." in text:
        raise BadArticle(f"invalid id {text[:40]!r}: use letters, digits, '.', '-', '_'")
    return text


def _as_date(value: object) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    try:
        return dt.date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        raise BadArticle(f"date {text[:30]!r} is not YYYY-MM-DD") from None


def _as_list(value: object, name: str) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [v.strip() for v in re.split(r"[,、]", value) if v.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int)) for v in value):
        return [str(v).strip() for v in value if str(v).strip()]
    raise BadArticle(f"{name} must be a list of strings")


def _as_text(value: object, name: str) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return _checked(str(value).strip(), name)
    raise BadArticle(f"{name} must be a string")


def _checked(text: str, name: str) -> str:
    # JSON can carry "\ud800" and NUL; neither survives UTF-8 files or the analyser.
    if "\x00" in text:
        raise BadArticle(f"{name} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadArticle(f"{name} contains an unpaired surrogate (not valid Unicode)") from None
    return text


def _as_url(value: object) -> str | None:
    url = _as_text(value, "url")
    # Only web links: a javascript: or data: URL must never reach a page as a link.
    if url and not re.match(r"https?://[^\s]+$", url, re.I):
        raise BadArticle(f"url must start with http:// or https:// (got {url[:40]!r})")
    return url


def make_article(data: dict, categories: frozenset[str] | None = None,
                 path: str | None = None) -> Article:
    """Validate a mapping of article fields and return an Article."""
    if not isinstance(data, dict):
        raise BadArticle("an article must be an object with id, title and body")
    title = _as_text(data.get("title"), "title")
    body = data.get("body")
    if not title:
        raise BadArticle("title is missing")
    if not isinstance(body, str) or not body.strip():
        raise BadArticle("body is missing or empty")
    _checked(body, "body")
    prefecture = _as_text(data.get("prefecture"), "prefecture")
    if prefecture and prefecture not in PREFECTURES and prefecture != NATIONWIDE:
        raise BadArticle(f"unknown prefecture {prefecture!r}")
    cats = [_checked(c, "categories") for c in _as_list(data.get("categories"), "categories")]
    if categories is not None:
        unknown = [c for c in cats if c not in categories]
        if unknown:
            raise BadArticle(f"unknown categories {unknown} (see {CATEGORIES_FILE})")
    return Article(
        id=validate_id(data.get("id")),
        title=title,
        body=body.strip(),
        date=_as_date(data.get("date")),
        prefecture=prefecture,
        municipality=_as_text(data.get("municipality"), "municipality"),
        categories=cats,
        tags=[_checked(t, "tags") for t in _as_list(data.get("tags"), "tags")],
        url=_as_url(data.get("url")),
        source=_as_text(data.get("source"), "source"),
        path=path,
    )


# --- one loader per format ---------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadArticle(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def load_markdown(path: Path, categories: frozenset[str] | None = None) -> Article:
    """Read a Markdown file with YAML front matter."""
    return parse_markdown(_read_text(path), path, categories)


def parse_markdown(text: str, path: Path, categories: frozenset[str] | None = None) -> Article:
    """Return the article in the text of a Markdown file (the id defaults to its name)."""
    m = _FRONT_MATTER.match(text)
    if not m:
        raise BadArticle("no YAML front matter (--- ... ---) at the top")
    try:
        meta = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 2}" if mark else ""
        raise BadArticle(f"front matter is not valid YAML{line}") from None
    except ValueError as exc:  # YAML reads 2023-02-30 as a date and fails
        raise BadArticle(f"front matter has an invalid date or value ({exc})") from None
    if not isinstance(meta, dict):
        raise BadArticle("front matter must be a mapping of fields")
    meta = dict(meta)
    meta.setdefault("id", path.stem)
    meta["body"] = text[m.end():]
    return make_article(meta, categories, str(path))


def load_text(path: Path, categories: frozenset[str] | None = None) -> Article:
    """Read a plain-text file: first non-empty line is the title, the rest the body."""
    lines = _read_text(path).strip().splitlines()
    if not lines:
        raise BadArticle("the file is empty")
    return make_article({"id": path.stem, "title": lines[0].strip(),
                         "body": "\n".join(lines[1:])}, categories, str(path))


class _MainText(HTMLParser):
    """Collect an HTML page's title and readable text, skipping scripts and navigation."""

    SKIP = {"script", "style", "nav", "header", "footer", "aside", "noscript", "template",
            "form", "svg"}
    BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section",
             "article", "main", "blockquote", "pre", "dd", "dt"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.h1 = ""
        self._in_title = self._in_h1 = False
        self._skip = 0
        self.parts: list[str] = []
        self.main_parts: list[str] | None = None
        self._main_depth = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag == "h1":
            self._in_h1 = True
        if tag in ("main", "article"):
            self._main_depth += 1
            if self.main_parts is None:
                self.main_parts = []
        if tag in self.BLOCK:
            self._emit("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self._skip:
            self._skip -= 1
        elif tag == "title":
            self._in_title = False
        elif tag == "h1":
            self._in_h1 = False
        if tag in ("main", "article") and self._main_depth:
            self._main_depth -= 1
        if tag in self.BLOCK:
            self._emit("\n")

    def _emit(self, text):
        self.parts.append(text)
        if self._main_depth and self.main_parts is not None:
            self.main_parts.append(text)

    def handle_data(self, data):
        if self._in_title:
            self.title += data
            return
        if self._skip:
            return
        if self._in_h1:
            self.h1 += data
        self._emit(data)


def load_html(path: Path, categories: frozenset[str] | None = None) -> Article:
    """Read an HTML page: <title> (or <h1>) and the main text."""
    parser = _MainText()
    parser.feed(_read_text(path))
    parser.close()
    parts = parser.main_parts if parser.main_parts else parser.parts
    lines = [re.sub(r"[ \t\u3000]+", " ", ln).strip() for ln in "".join(parts).splitlines()]
    body = "\n".join(ln for ln in lines if ln)
    title = (parser.title or parser.h1).strip()
    return make_article({"id": path.stem, "title": title, "body": body}, categories, str(path))


def iter_jsonl(path: Path, categories: frozenset[str] | None = None
               ) -> Iterator[Article | Problem]:
    """Yield an Article or a Problem for each non-empty line of a JSON Lines file."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        yield Problem(str(path), None, f"cannot read: {exc.strerror}")
        return
    with handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw.decode("utf-8-sig"))
                yield make_article(data, categories, f"{path}:{number}")
            except UnicodeDecodeError:
                yield Problem(str(path), number, "not UTF-8 text")
            except json.JSONDecodeError as exc:
                yield Problem(str(path), number, f"invalid JSON ({exc.msg})")
            except BadArticle as exc:
                yield Problem(str(path), number, str(exc))


_LOADERS = {".md": load_markdown, ".txt": load_text, ".html": load_html, ".htm": load_html}


# --- whole sources ------------------------------------------------------------------


def load_categories(directory: Path) -> frozenset[str] | None:
    """Read the category taxonomy of a corpus folder, or None when it has none."""
    path = directory / CATEGORIES_FILE
    if not path.is_file():
        return None
    names = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadArticle(f"{path} must be a YAML list of category names")
    return frozenset(names)


def _files(source: Path) -> Iterator[Path]:
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            rel = path.relative_to(source).parts
            if any(p.startswith(".") for p in rel):
                continue
            # eval/ holds judged queries and README files describe the folder: not articles.
            if "eval" in rel[:-1] or path.name.upper().startswith("README"):
                continue
            if path.is_file() and path.suffix.lower() in SUFFIXES:
                yield path
    else:
        yield source


def load_file(path: Path, categories: frozenset[str] | None = None
              ) -> Iterator[Article | Problem]:
    """Yield the articles of one file, or a Problem for each part that cannot load."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from iter_jsonl(path, categories)
        return
    loader = _LOADERS.get(suffix)
    if loader is None:
        yield Problem(str(path), None, "unsupported file type")
        return
    try:
        yield loader(path, categories)
    except BadArticle as exc:
        yield Problem(str(path), None, str(exc))
    except OSError as exc:
        yield Problem(str(path), None, f"cannot read: {exc.strerror}")


def corpus_files(source: Path) -> Iterator[Path]:
    """Yield the files under source that load_sources reads, in the order it reads them."""
    return _files(Path(source))


def load_sources(sources: Iterable[str | Path]) -> LoadResult:
    """Load every article under the given files and folders (folders recursively)."""
    result = LoadResult()
    seen: dict[str, str] = {}
    for source in map(Path, sources):
        if not source.exists():
            result.problems.append(Problem(str(source), None, "no such file or folder"))
            continue
        try:
            categories = load_categories(source if source.is_dir() else source.parent)
        except (BadArticle, yaml.YAMLError) as exc:
            result.problems.append(Problem(str(source / CATEGORIES_FILE), None, str(exc)))
            categories = None
        for path in _files(source):
            result.files += 1
            suffix = path.suffix.lower()
            for item in load_file(path, categories):
                if isinstance(item, Problem):
                    result.problems.append(item)
                elif item.id in seen:
                    line = int(item.path.rpartition(":")[2]) if suffix == ".jsonl" else None
                    result.problems.append(Problem(
                        str(path), line, f"duplicate id {item.id!r} (first in {seen[item.id]})"))
                else:
                    seen[item.id] = item.path or str(path)
                    result.articles.append(item)
    return result


def markdown_text(article: Article) -> str:
    """Return an article as Markdown with YAML front matter (the form kb stores it in)."""
    meta = {k: v for k, v in article.to_dict().items()
            if k not in ("body", "path") and v not in (None, [], "")}
    text = "---\n" + yaml.safe_dump(meta, allow_unicode=True, sort_keys=False) + "---\n"
    return text + article.body.rstrip("\n") + "\n"


def write_markdown(article: Article, directory: Path) -> Path:
    """Write an article as Markdown with front matter (not atomic: kb.store is)."""
    path = directory / f"{article.id}.md"
    path.write_text(markdown_text(article), encoding="utf-8")
    return path
