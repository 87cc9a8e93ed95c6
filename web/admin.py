"""Writes and who may make them: the write API, the Japanese admin page, read tokens.

Writes need the operator's WRITE_TOKEN: `Authorization: Bearer <token>` on the API, or a
signed session (logged in with the token) plus a CSRF token on the admin forms. With no
token configured writes are disabled. Reads are open unless READ_TOKEN is set.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from flask import (Blueprint, Flask, current_app, jsonify, redirect, render_template, request,
                   session, url_for)

from kb.corpus import load_categories
from kb.errors import (ArticleNotFound, BadArticle, BadRequest, Forbidden, KBError, Unauthorized,
                       UnsupportedMediaType)
from kb.store import ARTICLE_FIELDS, Store

from .views import article_data, get_index

bp = Blueprint("admin", __name__)
FORM_FIELDS = ("id", "title", "body", "date", "prefecture", "municipality", "tags", "url",
               "source")


def init_app(app: Flask) -> None:
    """Register the blueprint and make sessions safe and shared by every worker process."""
    if not app.config.get("SECRET_KEY"):
        seed = app.config.get("WRITE_TOKEN") or app.config.get("READ_TOKEN")
        # Derived from the token, so every gunicorn worker signs alike and changing the
        # token signs everyone out. With no token there is nothing to sign in to.
        app.config["SECRET_KEY"] = (
            hmac.new(seed.encode("utf-8"), b"kb admin session v1", hashlib.sha256).hexdigest()
            if seed else secrets.token_hex(32))
    app.config["SESSION_COOKIE_NAME"] = "kb_session"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Strict"
    app.register_blueprint(bp)


def get_store() -> Store:
    """Return a Store over the app's corpus folder and index."""
    cfg = current_app.config
    return Store(cfg["CORPUS_DIR"], cfg["INDEX_DIR"], cfg["LOCK_TIMEOUT"])


# --- tokens ----------------------------------------------------------------------------


def _same(given: str | None, token: str) -> bool:
    """Compare in constant time; an unset token never matches."""
    if not token or given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode("utf-8"))


def _bearer() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _fingerprint(token: str) -> str:
    return hashlib.sha256(b"kb token " + token.encode("utf-8")).hexdigest()[:32]


def _session_role() -> str | None:
    """The role of a signed-in browser, if the token it signed in with is still the one set."""
    role, fp = session.get("role"), session.get("fp")
    cfg = current_app.config
    if role == "write" and cfg["WRITE_TOKEN"] and fp == _fingerprint(cfg["WRITE_TOKEN"]):
        return "write"
    if role == "read" and cfg["READ_TOKEN"] and fp == _fingerprint(cfg["READ_TOKEN"]):
        return "read"
    return None


def require_write_token() -> None:
    """Allow the request only with the operator's write token (API)."""
    token = current_app.config["WRITE_TOKEN"]
    if not token:
        raise Forbidden("書き込みは無効になっています（サーバーに KB_WRITE_TOKEN が設定されていません）。",
                        hint="set KB_WRITE_TOKEN on the server to enable writes")
    if not _same(_bearer(), token):
        raise Unauthorized("書き込みには正しいトークンが必要です（Authorization: Bearer <token>）。")


@bp.before_app_request
def require_read_token():
    """With READ_TOKEN set, every page and API call except /healthz and /admin needs it."""
    token = current_app.config["READ_TOKEN"]
    if not token or request.endpoint in ("static", "views.healthz") \
            or request.path == "/admin" or request.path.startswith("/admin/"):
        return None
    if _session_role() is not None:
        return None
    given = _bearer()
    if _same(given, token) or _same(given, current_app.config["WRITE_TOKEN"]):
        return None
    from . import wants_json  # the app's own rule for which answers are JSON

    if wants_json():
        raise Unauthorized("閲覧には正しいトークンが必要です（Authorization: Bearer <token>）。")
    return redirect(url_for("admin.admin_page", next=request.full_path))


# --- the JSON write API ---------------------------------------------------------------


def json_body() -> object:
    """Return the request's JSON body, or raise 415/413/400 with a clear message."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("Content-Type: application/json で JSON を送ってください。")
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType("文字コードは UTF-8 にしてください。")
    raw = request.get_data(cache=False)  # 413 beyond MAX_CONTENT_LENGTH
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"本文が UTF-8 ではありません（{exc.start} バイト目）。") from None
    if not text.strip():
        raise BadRequest("本文が空です。JSON のオブジェクトを送ってください。")
    try:
        return current_app.json.loads(text)
    except ValueError as exc:
        raise BadRequest(f"JSON として読めません（{str(exc)[:120]}）。") from None


def _written(result, status: int):
    response = jsonify({"ok": True, **result.to_dict()})
    response.status_code = status
    if status == 201:
        response.headers["Location"] = url_for("views.api_article", article_id=result.id)
    return response


@bp.route("/api/articles", methods=["POST"])
def api_create():
    require_write_token()
    result = get_store().create(json_body())
    return _written(result, 201)


@bp.route("/api/articles/<path:article_id>", methods=["PUT"])
def api_replace(article_id):
    require_write_token()
    result = get_store().replace(article_id, json_body())
    return _written(result, 200)


@bp.route("/api/articles/<path:article_id>", methods=["DELETE"])
def api_delete(article_id):
    require_write_token()
    (result,) = get_store().delete([article_id])
    return _written(result, 200)


# --- the admin page --------------------------------------------------------------------


def _csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


@bp.app_template_global()
def csrf_token() -> str:
    """The hidden-field value every admin form carries."""
    return _csrf_token()


@bp.before_request
def _check_form():
    """Every admin form POST must come from our own page: same origin, the session's token.

    (The JSON API in this blueprint authenticates with a bearer token instead, which a
    browser never attaches by itself, so it needs no CSRF token.)
    """
    if request.method != "POST" or not request.path.startswith("/admin"):
        return
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if origin and urlsplit(origin).netloc not in ("", request.host):
        raise Forbidden("別のサイトからの送信は受け付けません。")
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent.encode("utf-8", "surrogateescape"),
                                               expected.encode("utf-8")):
        raise Forbidden("フォームの有効期限が切れました。ページを読み込み直してもう一度お試しください。")


@bp.after_request
def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


def _require_admin():
    if not current_app.config["WRITE_TOKEN"]:
        raise Forbidden("書き込みは無効になっています（サーバーに KB_WRITE_TOKEN が設定されていません）。")
    if _session_role() != "write":
        return redirect(url_for("admin.admin_page"))
    return None


def _categories() -> list[str]:
    try:
        return sorted(load_categories(get_store().corpus_dir) or ())
    except (KBError, ValueError, OSError):
        return []


def _render(template: str, status: int = 200, **context):
    context.setdefault("query", "")
    return render_template(template, writes_enabled=bool(current_app.config["WRITE_TOKEN"]),
                           role=_session_role(), **context), status


@bp.route("/admin")
def admin_page():
    _csrf_token()
    if _session_role() != "write":
        return _render("admin_login.html", next=_safe_next(request.args.get("next")))
    ix = get_index()
    return _render("admin.html", articles=ix.doc_count(), generation=ix.meta.get("generation"),
                   corpus=str(get_store().corpus_dir))


def _safe_next(target: str | None) -> str:
    # only a path on this site: never an absolute URL, never //host
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return ""


@bp.route("/admin/login", methods=["POST"])
def login():
    given = request.form.get("token", "")
    cfg = current_app.config
    role = ("write" if _same(given, cfg["WRITE_TOKEN"])
            else "read" if _same(given, cfg["READ_TOKEN"]) else None)
    if role is None:
        return _render("admin_login.html", 401, error="トークンが違います。",
                       next=_safe_next(request.form.get("next")))
    session.clear()
    session["role"], session["fp"] = role, _fingerprint(cfg[f"{role.upper()}_TOKEN"])
    session["csrf"] = secrets.token_urlsafe(32)  # a new token after signing in
    target = _safe_next(request.form.get("next"))
    return redirect(target or (url_for("admin.admin_page") if role == "write"
                               else url_for("views.home")))


@bp.route("/admin/logout", methods=["POST"])
def logout():
    session.clear()
    return redirect(url_for("admin.admin_page"))


def _form_data() -> dict:
    """The article fields of an admin form, shaped as the API takes them."""
    data = {name: request.form.get(name, "") for name in FORM_FIELDS}
    data["categories"] = request.form.getlist("categories")
    data["tags"] = [t.strip() for t in data["tags"].replace("、", ",").split(",") if t.strip()]
    return {k: v for k, v in data.items() if k in ARTICLE_FIELDS and v not in ("", [])}


def _form_page(article: dict, mode: str, status: int = 200, error: str = ""):
    return _render("admin_form.html", status, article=article, mode=mode, error=error,
                   categories=_categories())


@bp.route("/admin/articles/new", methods=["GET", "POST"])
def new_article():
    if (response := _require_admin()) is not None:
        return response
    if request.method == "GET":
        return _form_page({}, "new")
    data = _form_data()
    try:
        result = get_store().create(data)
    except KBError as exc:
        return _form_page(data, "new", exc.status, exc.message)
    return _render("admin_done.html", action="追加", article_id=result.id)


@bp.route("/admin/articles/<path:article_id>", methods=["GET", "POST"])
def edit_article(article_id):
    if (response := _require_admin()) is not None:
        return response
    if request.method == "GET":
        article = article_data(article_id)  # 404 page when it does not exist
        article["tags"] = "、".join(article.get("tags", []))
        return _form_page(article, "edit")
    data = _form_data()
    data["id"] = article_id
    try:
        result = get_store().replace(article_id, data)
    except KBError as exc:
        return _form_page({**data, "tags": "、".join(data.get("tags", []))}, "edit",
                          exc.status, exc.message)
    return _render("admin_done.html", action="更新", article_id=result.id)


@bp.route("/admin/articles/<path:article_id>/delete", methods=["POST"])
def delete_article(article_id):
    if (response := _require_admin()) is not None:
        return response
    try:
        get_store().delete([article_id])
    except (ArticleNotFound, BadArticle) as exc:
        return _render("admin_done.html", exc.status, error=exc.message)
    return _render("admin_done.html", action="削除", article_id=article_id, deleted=True)


@bp.route("/admin/find", methods=["GET"])
def find_article():
    if (response := _require_admin()) is not None:
        return response
    article_id = request.args.get("id", "").strip()
    if not article_id:
        return redirect(url_for("admin.admin_page"))
    return redirect(url_for("admin.edit_article", article_id=article_id))
