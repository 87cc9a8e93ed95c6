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
