"""Downloads of a result set: /search.csv and /search.json take the parameters of /search."""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, current_app, json, url_for

from kb.export import content_disposition, download_name, export_hits, export_rows, to_csv

from .views import get_index, search_args

bp = Blueprint("export", __name__)


def export_data() -> dict:
    """The whole result set a search URL describes, up to EXPORT_MAX articles."""
    args = search_args()
    text = args.pop("text")
    return export_hits(get_index(), text, limit=current_app.config["EXPORT_MAX"], **args)


def _article_link(article_id: str) -> str:
    return url_for("views.article_page", article_id=article_id, _external=True)


def _download(body: str, mimetype: str, suffix: str, data: dict) -> Response:
    response = Response(body, content_type=mimetype)
    day = dt.date.today().isoformat()
    response.headers["Content-Disposition"] = content_disposition(
        download_name(data["query"], suffix, day))
    response.headers["X-Total-Count"] = str(data["total"])
    response.headers["X-Export-Limit"] = str(data["limit"])
    response.headers["X-Export-Truncated"] = "true" if data["truncated"] else "false"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/search.csv")
def search_csv():
    data = export_data()
    body = to_csv(export_rows(data["hits"], _article_link))
    return _download(body, "text/csv; charset=utf-8", "csv", data)


@bp.route("/search.json")
def search_json():
    data = export_data()
    for hit in data["hits"]:
        hit["link"] = _article_link(hit["id"])
        hit.pop("snippet_html", None)
    body = json.dumps({"ok": True, **data}, ensure_ascii=False, indent=1)
    return _download(body, "application/json; charset=utf-8", "json", data)
