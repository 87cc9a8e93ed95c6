"""The search log in the web app: record searches and clicks, and the editors' insights page.

Searches are recorded after the response is made, from the data the search views left
in `g.search_result`; a result link's click is reported by a small beacon
(static/clicklog.js -> POST /api/click). A failure to log is written to the server
log and never reaches the person searching.

/admin/insights (and its JSON twin /api/admin/insights) are for editors: they need
the write token, as for writes (web/admin.py): `Authorization: Bearer TOKEN`, or a
browser signed in on /admin with it.
"""
from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlsplit

from flask import (Blueprint, current_app, g, jsonify, make_response, redirect,
                   render_template, request, url_for)

from kb.errors import BadRequest, Forbidden, Unauthorized
from kb.searchlog import SearchLog

bp = Blueprint("insights", __name__)
LOGGED_ENDPOINTS = {"views.search_page": "page", "views.api_search": "api"}
LOG_FILE = "searchlog.sqlite3"
MAX_DAYS = 3650


# --- the log ---------------------------------------------------------------------------------


def log_path() -> Path | None:
    """Where the log lives: SEARCH_LOG, or searchlog.sqlite3 in the index folder; None if off."""
    configured = str(current_app.config.get("SEARCH_LOG") or "").strip()
    if configured.lower() in ("off", "none", "0", "false", "-"):
        return None
    if configured:
        return Path(configured)
    return Path(current_app.config["INDEX_DIR"]) / LOG_FILE


def get_log() -> SearchLog | None:
    """Return the app's search log (None when the operator turned it off)."""
    path = log_path()
    if path is None:
        return None
    ext = current_app.extensions
    log = ext.get("kb_searchlog")
    if log is None or log.path != path:
        log = SearchLog(path, retention_days=int(current_app.config["SEARCH_LOG_DAYS"]),
                        keep_client=bool(int(current_app.config["SEARCH_LOG_CLIENT"] or 0)))
        ext["kb_searchlog"] = log
    return log


@bp.app_template_global()
def search_log_id() -> str:
    """The id this search is logged under; result pages hand it to the click beacon."""
    if "search_log_id" not in g:
        g.search_log_id = secrets.token_hex(8)
    return g.search_log_id


@bp.after_app_request
def log_search(response):
    via = LOGGED_ENDPOINTS.get(request.endpoint or "")
    data = g.get("search_result")
    if via is None or data is None or response.status_code != 200:
        return response
    try:
        log = get_log()
        if log is not None:
            log.record_search(
                search_log_id(), data.get("query", ""), filters=data.get("filters"),
                hits=int(data.get("total", 0)), page=int(data.get("page", 1)),
                sort=data.get("sort", "relevance"),
                relaxed=(data.get("relaxed") or {}).get("mode"), took_ms=data.get("took_ms"),
                via=via, client=request.remote_addr, agent=request.headers.get("User-Agent"))
    except Exception:  # a lost log line must never cost a search
        current_app.logger.warning("search log: could not record a search", exc_info=True)
    return response


def _same_origin() -> bool:
    """True unless the browser says the request comes from another site."""
    site = request.headers.get("Sec-Fetch-Site")
    if site:  # set by the browser itself; a page cannot forge it (and proxies keep it)
        return site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        return urlsplit(origin).netloc == request.host
    return True  # not a browser: nothing to protect a visitor from


@bp.route("/api/click", methods=["POST"])
def api_click():
    """Record that a result was opened: {"search": ID, "id": ARTICLE_ID, "rank": N}."""
    if not _same_origin():
        raise BadRequest("ほかのサイトからのクリック記録は受け付けません。")
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("search"), str) \
            or not isinstance(body.get("id"), str):
        raise BadRequest('JSON {"search": "...", "id": "...", "rank": 1} を送ってください。')
    rank = body.get("rank")
    rank = rank if isinstance(rank, int) and 0 < rank <= 100_000 else None
    recorded = False
    try:
        log = get_log()
        if log is not None:
            recorded = log.record_click(body["search"][:64], body["id"], rank)
    except Exception:
        current_app.logger.warning("search log: could not record a click", exc_info=True)
    return jsonify({"ok": True, "recorded": recorded})


# --- editors only ------------------------------------------------------------------------------


def is_editor() -> bool:
    """True for a browser signed in to /admin with the write token, or a Bearer write token."""
    from . import admin  # its tokens and session are the one way to be an editor

    token = current_app.config.get("WRITE_TOKEN") or ""
    return admin._session_role() == "write" or admin._same(admin._bearer(), token)


def require_editor() -> None:
    """Raise 403 when writes are off, 401 unless the request is an editor's."""
    if not current_app.config.get("WRITE_TOKEN"):
        raise Forbidden("編集者用のトークン（KB_WRITE_TOKEN）が設定されていないため使えません。",
                        hint="set KB_WRITE_TOKEN on the server")
    if not is_editor():
        raise Unauthorized("編集者用のトークンが必要です（Authorization: Bearer <token>）。")


def _days_arg() -> int:
    raw = request.args.get("days", "") or "30"
    try:
        days = int(raw)
    except ValueError:
        raise BadRequest("期間（days）は日数を整数で指定してください。") from None
    if not 1 <= days <= MAX_DAYS:
        raise BadRequest(f"期間（days）は 1 から {MAX_DAYS} の範囲で指定してください。")
    return days


def insights_data() -> dict:
    """Popular, zero-hit and never-clicked queries over the last `days` days."""
    days = _days_arg()
    log = get_log()
    if log is None:
        return {"enabled": False, "days": days}
    return {"enabled": True, "retention_days": log.retention_days,
            **log.insights(days=days, limit=30)}


@bp.route("/api/admin/insights")
def api_insights():
    require_editor()
    return jsonify({"ok": True, **insights_data()})


@bp.route("/admin/insights")
def insights_page():
    if not current_app.config.get("WRITE_TOKEN"):
        return render_template("insights.html", state="disabled", query=""), 403
    if not is_editor():  # sign in on the admin page, then come back here
        return redirect(url_for("admin.admin_page", next=request.full_path.rstrip("?")))
    response = make_response(render_template("insights.html", state="ok", data=insights_data(),
                                             query=""))
    response.headers["Cache-Control"] = "no-store"
    return response
