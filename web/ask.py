"""Q&A: the /ask page and its JSON twin /api/ask, and the answer box of the search page."""
from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, render_template, request

from kb.answer_types import looks_like_question
from kb.errors import KBError
from kb.qa import ask
from kb.search import search

from .views import get_index

bp = Blueprint("ask", __name__)
FALLBACK_HITS = 5  # search hits shown when no answer is good enough


def ask_data() -> dict:
    """Answer the question a request carries (?q=); BadQuery when it is empty or too long."""
    q = request.args.get("q", "")
    g.query = q
    return ask(get_index(), q)


def answer_box(query: str, filters: bool = False) -> dict | None:
    """The answer shown above search results when the query reads as a question, else None."""
    if filters or not looks_like_question(query):
        return None
    try:
        return ask(get_index(), query)
    except KBError:
        return None  # the search itself reports a bad query
    except Exception:  # the answer box must never break the search page
        current_app.logger.exception("answer box failed for %r", query[:100])
        return None


@bp.route("/ask")
def ask_page():
    if not request.args.get("q", "").strip():
        return render_template("ask.html", qa=None, hits=[], query="")
    qa = ask_data()
    hits = []
    if not qa["answered"]:
        # an honest "not found", with the articles that come closest
        try:
            hits = search(get_index(), qa["question"], per_page=FALLBACK_HITS)["hits"]
        except KBError:
            hits = []
    return render_template("ask.html", qa=qa, hits=hits, query=qa["question"])


@bp.route("/api/ask")
def api_ask():
    return jsonify({"ok": True, **ask_data()})
