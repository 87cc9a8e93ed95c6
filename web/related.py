"""Related cases: the /related page, its JSON twins and the 関連事例 block of article pages."""
from __future__ import annotations

import threading

from flask import Blueprint, current_app, jsonify, render_template, request

from kb.corpus import validate_id
from kb.errors import ArticleNotFound, BadArticle, BadRequest, KBError, TooLarge
from kb.related import (DEFAULT_LIMIT, MAX_LIMIT, MAX_TEXT_CHARS, RelatedModel,
                        apply_overlay, load_base, overlay_key)

from .views import get_index

bp = Blueprint("related", __name__)
_load_lock = threading.Lock()
PAGE_LIMIT = 5  # related cases shown under an article and on /related


def get_model() -> RelatedModel:
    """The related model of the generation being served, with its current overlay.

    Reloaded after a swap; after an incremental write only the small overlay is read
    again (its file changes), the build's arrays stay in memory.
    """
    gen = get_index().generation_path
    key = overlay_key(gen)
    cached = current_app.extensions.get("kb_related")
    if cached is None or cached[0] != gen or cached[1] != key:
        with _load_lock:
            cached = current_app.extensions.get("kb_related")
            if cached is None or cached[0] != gen or cached[1] != key:
                base = cached[2] if cached is not None and cached[0] == gen else load_base(gen)
                found, model = apply_overlay(base, gen)  # logs and serves base if broken
                cached = (gen, found, base, model)
                current_app.extensions["kb_related"] = cached
    return cached[3]


def _limit_arg() -> int:
    raw = request.args.get("limit", "")
    if raw == "":
        return DEFAULT_LIMIT
    try:
        return int(raw)  # the range is checked by kb.related
    except ValueError:
        raise BadRequest(f"件数は 1 から {MAX_LIMIT} の整数で指定してください。") from None


def article_related(article_id: str, limit: int) -> dict:
    """Related cases of an indexed article.

    One the model does not know (written while its overlay could not be) is matched by text.
    """
    try:
        article_id = validate_id(article_id)
    except BadArticle:
        raise ArticleNotFound(f"記事「{article_id[:80]}」は見つかりません。") from None
    ix = get_index()
    model = get_model()

    def exists(other: str) -> bool:
        return ix.searcher().document(id=other) is not None

    try:
        return model.for_article(article_id, limit, exists=exists)
    except ArticleNotFound:
        doc = ix.get_article(article_id)  # 404 unless the index has it
    body = doc.get("body") or doc.get("title") or ""
    found = model.for_text(body[:MAX_TEXT_CHARS], limit, title=doc.get("title", ""),
                           exclude=[article_id])
    found["related"] = [r for r in found["related"] if exists(r["id"])]
    found["duplicates"] = [r for r in found["duplicates"] if exists(r["id"])]
    return {"id": article_id, "title": doc.get("title", ""), **found}


@bp.app_template_global()
def related_cases(article_id: str) -> dict:
    """Data of the 関連事例 block on an article page; a problem here never breaks the page."""
    try:
        return {"ok": True, **article_related(article_id, PAGE_LIMIT)}
    except KBError as exc:
        return {"ok": False, "message": exc.message}
    except Exception:  # the article itself is still worth showing
        current_app.logger.exception("related cases failed for %s", article_id)
        return {"ok": False, "message": "関連事例を表示できませんでした。"}


# --- page -------------------------------------------------------------------------------


@bp.route("/related", methods=["GET", "POST"])
def related_page():
    text, data, error, status = "", None, None, 200
    if request.method == "POST":
        text = request.form.get("text", "")
        try:
            data = get_model().for_text(text, PAGE_LIMIT)
        except (BadRequest, TooLarge) as exc:
            error, status = exc.message, exc.status
    return render_template("related.html", text=text, data=data, error=error,
                           max_chars=MAX_TEXT_CHARS, query=""), status


# --- JSON twins -----------------------------------------------------------------------------


@bp.route("/api/related/<path:article_id>")
def api_related_article(article_id):
    return jsonify({"ok": True, **article_related(article_id, _limit_arg())})


@bp.route("/api/related", methods=["POST"])
def api_related_text():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest('JSON のオブジェクト {"text": "..."} を送ってください。')
    limit = body.get("limit", DEFAULT_LIMIT)
    return jsonify({"ok": True, **get_model().for_text(body.get("text"), limit)})
