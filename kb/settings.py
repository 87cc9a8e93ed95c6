"""The settings table: one place that drives config defaults, CLI options and the docs."""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    """A setting: its config key, environment variable, default and meaning."""

    key: str
    env: str
    default: object
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("INDEX_DIR", "KB_INDEX", "index", "folder of the built index"),
    Setting("HOST", "HOST", "127.0.0.1", "address `kb serve` listens on"),
    Setting("PORT", "PORT", 8000, "port `kb serve` listens on"),
    Setting("WORKERS", "KB_WORKERS", 2, "server worker processes for `kb serve`"),
    Setting("PER_PAGE", "KB_PER_PAGE", 10, "results per page unless the request says otherwise"),
    Setting("MAX_CONTENT_LENGTH", "KB_MAX_BODY", 1_000_000,
            "largest request body accepted, in bytes (larger gets 413)"),
)


def defaults() -> dict:
    """Return {key: value} from the environment, falling back to each default."""
    out = {}
    for s in SETTINGS:
        raw = os.environ.get(s.env)
        if raw is None or raw == "":
            out[s.key] = s.default
        elif isinstance(s.default, int):
            try:
                out[s.key] = int(raw)
            except ValueError:
                raise SystemExit(f"{s.env}={raw!r} is not a whole number") from None
        else:
            out[s.key] = raw
    return out


def setting(key: str) -> Setting:
    """Return the Setting with this key."""
    return next(s for s in SETTINGS if s.key == key)
