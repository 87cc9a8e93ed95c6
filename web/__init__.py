"""The Flask front end: app factory, error handling and security headers."""
from __future__ import annotations

import os

from flask import Flask, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from kb.errors import KBError
from kb.settings import defaults

# Japanese messages for HTTP errors raised by Flask/Werkzeug itself.
HTTP_MESSAGES = {
    400: "リクエストが正しくありません。",
    404: "ページが見つかりません。",
    405: "この操作はこのアドレスでは使えません。",
    413: "送信されたデータが大きすぎます。",
    415: "送信されたデータの形式に対応していません。",
    500: "サーバー内部でエラーが発生しました。時間をおいて再度お試しください。",
}

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


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
    app.json.ensure_ascii = False
    app.json.sort_keys = False

    from . import related, views

    app.register_blueprint(views.bp)
    app.register_blueprint(related.bp)
    _register_errors(app)

    @app.after_request
    def security_headers(response):
        h = response.headers
        h.setdefault("Content-Security-Policy", CSP)
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Referrer-Policy", "same-origin")
        h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        return response

    return app


def wants_json() -> bool:
    """True for API routes, whose errors are JSON rather than a page."""
    return request.path.startswith("/api/") or request.path == "/healthz"


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
        return error_response(exc.status, exc.code, exc.message, exc.hint)

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
