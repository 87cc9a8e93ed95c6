"""Defences every response shares: strict JSON parsing and the security headers."""
from __future__ import annotations

import json

from flask import request
from flask.json.provider import DefaultJSONProvider

# Pages: only our own scripts, styles and images; no plugins, no framing, no <base>.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
# JSON is data, never a document: nothing in it may load or run even if opened directly.
CSP_JSON = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, but request bodies that cannot be sound data raise ValueError.

    ValueError is what Flask turns into a 400 (or None with silent=True): deep nesting
    (RecursionError), NaN/Infinity and unpaired surrogates ("\\ud800") would otherwise
    crash later with a 500.
    """

    def loads(self, s: str | bytes, **kwargs):
        try:
            data = json.loads(s, parse_constant=_no_constant, **kwargs)
        except RecursionError:
            raise ValueError("JSON is nested too deeply") from None
        _check_strings(data)
        return data


def _no_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _check_strings(data: object) -> None:
    stack = [data]
    while stack:  # no recursion: the nesting depth is the sender's choice
        item = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, value in item.items():
                _check_text(key)
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("JSON contains an unpaired surrogate (not valid Unicode)") from None


def security_headers(response):
    """Set the security headers on every response (a view may set its own CSP first)."""
    h = response.headers
    json_like = response.mimetype == "application/json" or request.path.startswith("/api/")
    h.setdefault("Content-Security-Policy", CSP_JSON if json_like else CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    h.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
    return response


# --- requests too malformed to reach Flask -------------------------------------------------

_GUNICORN_MESSAGES = {
    414: ("URI Too Long", "送信された URL が長すぎます。検索語を短くして（1,000 文字以内）もう一度お試しください。"),
    431: ("Request Header Fields Too Large", "送信されたヘッダーが大きすぎます。"),
    400: ("Bad Request", "リクエストの形式が正しくありません。"),
}


def gunicorn_error(status: int) -> bytes:
    """The whole HTTP response for a request gunicorn refused before Flask saw it."""
    reason, message = _GUNICORN_MESSAGES[status]
    body = ('<!doctype html><html lang="ja"><head><meta charset="utf-8">'
            f"<title>エラー - 事例ナレッジ検索</title></head><body><main><h1>入力を確認してください</h1>"
            f'<p>{message}</p><p><a href="/">検索のトップへ戻る</a></p></main></body></html>'
            ).encode("utf-8")
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            "Content-Type: text/html; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nContent-Security-Policy: {CSP}\r\n"
            "X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n\r\n")
    return head.encode("ascii") + body


def make_worker_class():
    """gunicorn's threaded worker, answering requests it cannot parse in Japanese.

    Without this an over-long URL (a long text pasted into the search box) gets
    gunicorn's English "URI Too Long" page instead of a page the user can act on.
    """
    from gunicorn import util
    from gunicorn.http import errors
    from gunicorn.workers.gthread import ThreadWorker

    statuses = [
        (errors.LimitRequestLine, 414), (errors.LimitRequestHeaders, 431),
        ((errors.InvalidRequestLine, errors.InvalidRequestMethod, errors.InvalidHTTPVersion,
          errors.InvalidHeader, errors.InvalidHeaderName, errors.ObsoleteFolding,
          errors.InvalidChunkSize, errors.ChunkMissingTerminator), 400),
    ]

    class Worker(ThreadWorker):
        def handle_error(self, req, client, addr, exc):
            status = next((s for kinds, s in statuses if isinstance(exc, kinds)), None)
            if status is None:
                return super().handle_error(req, client, addr, exc)
            self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
            try:
                util.write_nonblock(client, gunicorn_error(status))
            except Exception:  # the client went away: nothing to tell it
                self.log.debug("Failed to send error message.")

    return Worker
