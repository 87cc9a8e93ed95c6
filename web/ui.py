"""The search experience around the results: suggestions as you type and the result charts.

`init_app` also registers the export, search-log and API-description blueprints, so
the app factory needs one line for all of them.
"""
from __future__ import annotations

import time

from flask import Blueprint, Flask, jsonify, request, url_for
from markupsafe import Markup

from kb import autocomplete
from kb.charts import chart_data, tile_map_svg, year_chart_svg
from kb.errors import BadQuery

from .views import get_index, toggle_filter

bp = Blueprint("ui", __name__)
MAX_SUGGEST_INPUT = 1000


def init_app(app: Flask) -> None:
    """Register this module's blueprint and those of exports, the search log and the API page."""
    from . import apidoc, export, insights

    app.register_blueprint(bp)
    app.register_blueprint(export.bp)
    app.register_blueprint(insights.bp)  # its after-request hook logs every search
    app.register_blueprint(apidoc.bp)


# --- suggestions --------------------------------------------------------------------------


def suggest_data() -> dict:
    """Suggestions for what is being typed (the last word of `q`)."""
    started = time.perf_counter()
    q = request.args.get("q", "")
    if len(q) > MAX_SUGGEST_INPUT:
        raise BadQuery(f"検索語は{MAX_SUGGEST_INPUT:,}文字以内にしてください。")
    raw = request.args.get("limit", "")
    try:
        limit = int(raw) if raw else autocomplete.DEFAULT_LIMIT
    except ValueError:
        raise BadQuery("件数は整数で指定してください。") from None
    if not 1 <= limit <= autocomplete.MAX_LIMIT:
        raise BadQuery(f"件数は 1 から {autocomplete.MAX_LIMIT} の範囲で指定してください。")
    found = autocomplete.suggest(autocomplete.data_for(get_index()), q, limit) if q.strip() else []
    for s in found:
        if s["kind"] == "title":
            s["url"] = url_for("views.article_page", article_id=s["id"])
    return {"query": q, "suggestions": found,
            "took_ms": round((time.perf_counter() - started) * 1000, 2)}


@bp.route("/api/suggest")
def api_suggest():
    response = jsonify({"ok": True, **suggest_data()})
    response.headers["Cache-Control"] = "private, max-age=60"
    return response


# --- charts ---------------------------------------------------------------------------------


def _filter_href(name: str, value) -> str:
    return toggle_filter(name, value)


@bp.app_template_global()
def search_charts(data: dict) -> dict:
    """The tile map and the fiscal-year bar chart of a search, as safe SVG markup."""
    counts = chart_data(data["facets"])
    return {"map": Markup(tile_map_svg(counts, _filter_href)),
            "years": Markup(year_chart_svg(counts, _filter_href)),
            "counts": counts}

