"""Pages and their JSON twins: each pair shares one data function."""
from __future__ import annotations

import threading
from pathlib import Path

from flask import Blueprint, current_app, g, jsonify, render_template, request, url_for

from kb.charts import chart_data
from kb.corpus import NATIONWIDE, PREFECTURES, load_categories, validate_id
from kb.errors import ArticleNotFound, BadArticle, BadQuery, KBError
from kb.index import OpenIndex
from kb.search import FILTERS, MAX_PAGE, MAX_PER_PAGE, matched_label, search
from kb.years import year_label

bp = Blueprint("views", __name__)
_open_lock = threading.Lock()


def get_index() -> OpenIndex:
    """Return the app's open index, reopened when a new generation was swapped in."""
    ext = current_app.extensions
    ix = ext.get("kb_index")
    if ix is None:
        with _open_lock:
            ix = ext.get("kb_index")
            if ix is None:
                ix = OpenIndex(current_app.config["INDEX_DIR"])
                ext["kb_index"] = ix
    else:
        ix.refresh()
    return ix


# --- request parsing -----------------------------------------------------------------


def _int_arg(name: str, default: int, low: int, high: int, label: str) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadQuery(f"{label}は整数で指定してください。") from None
    if not low <= value <= high:
        raise BadQuery(f"{label}は {low} から {high} の範囲で指定してください。")
    return value


def search_args() -> dict:
    """Read the search parameters shared by /search, /api/search (and exports)."""
    q = request.args.get("q", "")
    g.query = q
    filters = {name: request.args.getlist(name) for name in FILTERS if request.args.getlist(name)}
    check_filter_values(filters)
    return {
        "text": q,
        "filters": filters,
        "page": _int_arg("page", 1, 1, MAX_PAGE, "ページ番号"),
        "per_page": _int_arg("per_page", current_app.config["PER_PAGE"], 1, MAX_PER_PAGE,
                             "表示件数"),
        "sort": request.args.get("sort", "relevance") or "relevance",
        "synonyms": current_app.config.get("SYNONYMS") or None,
    }


def check_filter_values(filters: dict) -> None:
    """A prefecture or category no article can have is a typo: say so (400), not 0 hits."""
    for value in filters.get("prefecture", []):
        if value not in PREFECTURES and value != NATIONWIDE:
            raise BadQuery(f"都道府県「{value[:40]}」はありません。「静岡県」のように指定してください。")
    wanted = filters.get("category", [])
    if wanted:
        known = {t.decode("utf-8") for t in get_index().searcher().lexicon("categories")}
        try:
            known |= load_categories(Path(current_app.config["CORPUS_DIR"])) or set()
        except (KBError, ValueError, OSError):
            pass  # the taxonomy is optional here: the index's own categories suffice
        for value in wanted:
            if value not in known:
                raise BadQuery(f"カテゴリ「{value[:40]}」はありません。")


def search_data(explain: bool = False) -> dict:
    """Run the search a request asks for (explain: say which words matched each hit)."""
    data = search(get_index(), **search_args(), explain=explain)
    g.search_result = data  # the search log records it after the response (web/insights.py)
    return data


def article_data(article_id: str) -> dict:
    """Return one stored article as plain data."""
    try:
        article_id = validate_id(article_id)
    except BadArticle:
        raise ArticleNotFound(f"記事「{article_id[:80]}」は見つかりません。") from None
    doc = dict(get_index().get_article(article_id))
    doc["categories"] = [c for c in doc.get("categories", "").split(",") if c]
    doc["tags"] = [t for t in doc.get("tags", "").split(",") if t]
    doc.pop("path", None)
    return doc


# --- pages -----------------------------------------------------------------------------


@bp.app_template_global()
def url_with(**changes) -> str:
    """The current search URL with some parameters changed (None removes one)."""
    args = request.args.to_dict(flat=False)
    for key, value in changes.items():
        if value is None:
            args.pop(key, None)
        else:
            args[key] = value if isinstance(value, list) else [value]
    if "page" not in changes:
        args.pop("page", None)
    return url_for("views.search_page", **args)


@bp.app_template_global()
def toggle_filter(name: str, value) -> str:
    """URL that adds a facet value as a filter, or removes it when already chosen."""
    current = request.args.getlist(name)
    value = str(value)
    chosen = [v for v in current if v != value] if value in current else current + [value]
    return url_with(**{name: chosen or None})


@bp.app_template_filter("matched_label")
def _matched_label(matched: list[dict]) -> str:
    return matched_label(matched)


@bp.app_template_filter("year_label")
def _year_label(value) -> str:
    return year_label(int(value))


@bp.route("/")
def home():
    return render_template("home.html", query="")


@bp.route("/search")
def search_page():
    if not request.args.get("q", "").strip() and not any(request.args.get(f) for f in FILTERS):
        return render_template("home.html", query="")
    data = search_data(explain=True)
    from .ask import answer_box  # a question typed into the search box gets an answer too

    qa = answer_box(data["query"], filters=bool(data["filters"]) or data["page"] > 1)
    return render_template("search.html", data=data, query=data["query"], qa=qa)


@bp.route("/articles/<path:article_id>")
def article_page(article_id):
    article = article_data(article_id)
    return render_template("article.html", article=article, query="")


# --- JSON twins ------------------------------------------------------------------------


@bp.route("/api/search")
def api_search():
    data = search_data(explain=request.args.get("explain", "") not in ("", "0", "false"))
    return jsonify({"ok": True, **data, "charts": chart_data(data["facets"])})


@bp.route("/api/articles/<path:article_id>")
def api_article(article_id):
    return jsonify({"ok": True, "article": article_data(article_id)})


@bp.route("/healthz")
def healthz():
    ix = get_index()
    return jsonify({"ok": True, "articles": ix.doc_count(),
                    "generation": ix.meta.get("generation"),
                    "built_at": ix.meta.get("built_at")})


@bp.app_template_filter("blocks")
def body_blocks(body: str) -> list[tuple[str, str]]:
    """Split an article body into (kind, text) blocks: heading, item or paragraph.

    Templates render each block's text with autoescaping, so no markup in an
    article can reach the page.
    """
    blocks: list[tuple[str, str]] = []
    for line in (body or "").splitlines():
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            blocks.append(("heading", text.lstrip("#").strip()))
        elif text[0] in "・*-" and len(text) > 1:
            blocks.append(("item", text[1:].strip()))
        else:
            blocks.append(("para", text))
    return blocks
