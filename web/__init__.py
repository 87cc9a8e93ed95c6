"""The Flask front end: app factory, error handling and security headers."""
from __future__ import annotations

import os

from flask import Flask, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from kb.errors import KBError
from kb.settings import defaults

from .hardening import CSP, StrictJSONProvider, security_headers  # noqa: F401 (CSP: web.CSP)

# Japanese messages for HTTP errors raised by Flask/Werkzeug itself.
HTTP_MESSAGES = {
    400: "リクエストが正しくありません。",
    404: "ページが見つかりません。",
    405: "この操作はこのアドレスでは使えません。",
    413: "送信されたデータが大きすぎます。",
    415: "送信されたデータの形式に対応していません。",
    500: "サーバー内部でエラーが発生しました。時間をおいて再度お試しください。",
}


def create_app(test_config: dict | None = None) -> Flask:
    """Create the app: defaults, then an optional config file, then test_config."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(defaults())
    app.config.from_mapping(JSON_AS_ASCII=False)
    config_file = os.environ.get("KB_CONFIG")
    if config_file:
        app.config.from_pyfile(config_file)
    if test_config:
        app.config.from_mapping(test_config)
    app.json = StrictJSONProvider(app)  # bad JSON bodies are a 400, never a 500
    app.json.ensure_ascii = False
    app.json.sort_keys = False

    from . import admin, ask, related, views

    app.register_blueprint(views.bp)
    app.register_blueprint(related.bp)
    app.register_blueprint(ask.bp)  # Q&A: /ask, /api/ask
    admin.init_app(app)  # write API, /admin, optional read token
    from . import ui

    ui.init_app(app)  # suggestions, charts, exports, search log, API description
    _register_errors(app)
    app.after_request(security_headers)

    return app


def wants_json() -> bool:
    """True for API routes, whose errors are JSON rather than a page."""
    return request.path.startswith("/api/") or request.path in ("/healthz", "/search.json")


def error_response(status: int, code: str, message: str, hint: str = ""):
    """Render the one error shape: JSON for the API, a Japanese page otherwise."""
    if wants_json():
        error = {"code": code, "message": message}
        if hint:
            error["hint"] = hint
        return jsonify({"ok": False, "error": error}), status
    return render_template("error.html", status=status, message=message,
                           query=g.get("query", "")), status


def _register_errors(app: Flask) -> None:
    @app.errorhandler(KBError)
    def kb_error(exc: KBError):
        response = app.make_response(error_response(exc.status, exc.code, exc.message,
                                                    exc.hint))
        if exc.status == 503 and getattr(exc, "retry_after", None):
            response.headers["Retry-After"] = str(exc.retry_after)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="kb"'
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        code = (exc.name or "error").lower().replace(" ", "_")
        response = error_response(status, code, HTTP_MESSAGES.get(status, exc.description or ""))
        if status == 405 and exc.get_response().headers.get("Allow"):
            resp = app.make_response(response)
            resp.headers["Allow"] = exc.get_response().headers["Allow"]
            return resp
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("unhandled error on %s", request.path)
        return error_response(500, "internal_error", HTTP_MESSAGES[500])
