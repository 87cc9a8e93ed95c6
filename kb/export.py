"""A result set as a file: CSV that Excel opens as it should, and JSON.

CSV is UTF-8 with a byte-order mark (so Excel reads Japanese right), CRLF line ends,
quoted where needed, with Japanese headers; a cell that begins with = + - @ (or a tab
or carriage return) gets a leading apostrophe, so a spreadsheet never runs a formula
that arrived in an article (CSV injection).
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Callable, Iterable
from urllib.parse import quote

from .search import MAX_PER_PAGE, search

BOM = "\ufeff"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# (key of an export row, CSV header)
COLUMNS: tuple[tuple[str, str], ...] = (
    ("rank", "順位"),
    ("title", "タイトル"),
    ("prefecture", "都道府県"),
    ("municipality", "市区町村"),
    ("date", "日付"),
    ("year", "年度"),
    ("categories", "カテゴリ"),
    ("tags", "タグ"),
    ("snippet", "抜粋"),
    ("score", "スコア"),
    ("id", "記事ID"),
    ("link", "記事のURL"),
    ("url", "出典URL"),
)
_UNSAFE_NAME = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f\s]+')


def export_hits(index, text: str, *, limit: int = 1000, **options) -> dict:
    """Run a search and return up to `limit` hits, every page of them, with the total.

    `options` are search()'s own (filters, sort, ...); paging is done here.
    """
    options.pop("page", None)
    options.pop("per_page", None)
    hits: list[dict] = []
    page, first = 1, None
    per_page = min(MAX_PER_PAGE, max(1, limit))
    while len(hits) < limit:
        data = search(index, text, page=page, per_page=per_page, **options)
        first = first or data
        hits.extend(data["hits"])
        if page >= data["pages"] or not data["hits"]:
            break
        page += 1
    hits = hits[:limit]
    return {"query": first["query"], "filters": first["filters"], "sort": first["sort"],
            "total": first["total"], "exported": len(hits), "limit": limit,
            "truncated": first["total"] > len(hits), "relaxed": first["relaxed"],
            "hits": hits}


def guard_cell(value) -> str:
    """Return a cell's text, with an apostrophe before anything a spreadsheet would run."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(FORMULA_START):
        return "'" + text
    return text


def export_rows(hits: Iterable[dict], link: Callable[[str], str] = lambda i: "") -> list[dict]:
    """Flatten hits into export rows (lists joined with 、, the article page's URL added)."""
    rows = []
    for rank, hit in enumerate(hits, 1):
        rows.append({
            "rank": rank, "title": hit.get("title", ""), "prefecture": hit.get("prefecture"),
            "municipality": hit.get("municipality"), "date": hit.get("date"),
            "year": f"{hit['year']}年度" if hit.get("year") else "",
            "categories": "、".join(hit.get("categories") or []),
            "tags": "、".join(hit.get("tags") or []),
            "snippet": hit.get("snippet", ""), "score": hit.get("score"),
            "id": hit.get("id", ""), "link": link(hit.get("id", "")), "url": hit.get("url"),
        })
    return rows


def to_csv(rows: Iterable[dict]) -> str:
    """Return rows as Excel-ready CSV text: BOM, Japanese headers, CRLF, formulas defused."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow([header for _, header in COLUMNS])
    for row in rows:
        writer.writerow([guard_cell(row.get(key)) for key, _ in COLUMNS])
    return BOM + buf.getvalue()


def download_name(query: str, suffix: str, day: str) -> str:
    """A file name for a download: 検索結果_窓口業務_2024-05-01.csv (no path characters)."""
    words = _UNSAFE_NAME.sub("_", unicodedata.normalize("NFKC", query or "")).strip("_.")[:40]
    return f"検索結果_{words + '_' if words else ''}{day}.{suffix}"


def content_disposition(filename: str) -> str:
    """An attachment header both old and new browsers read (RFC 6266 / 5987)."""
    ascii_name = "kb-search" + filename[filename.rfind("."):]
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
