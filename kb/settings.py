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
    Setting("SYNONYMS", "KB_SYNONYMS", "synonyms.txt",
            "synonym list applied at query time (UTF-8, one comma-separated group per line); re-read when it changes"),
    Setting("CORPUS_DIR", "KB_CORPUS", "corpus",
            "folder the write API and `kb add` store articles in (the source of truth)"),
    Setting("WRITE_TOKEN", "KB_WRITE_TOKEN", "",
            "token that allows writes (API and /admin); empty means writes are disabled"),
    Setting("READ_TOKEN", "KB_READ_TOKEN", "",
            "token required to read; empty means reading is open to everyone"),
    Setting("SECRET_KEY", "KB_SECRET_KEY", "",
            "key that signs admin sessions; empty means derived from the tokens"),
    Setting("LOCK_TIMEOUT", "KB_LOCK_TIMEOUT", 10,
            "seconds a write waits for the writer lock before answering 503"),
    Setting("EXPORT_MAX", "KB_EXPORT_MAX", 1000,
            "most articles one CSV or JSON export of a search holds"),
    Setting("SEARCH_LOG", "KB_SEARCH_LOG", "",
            "SQLite file of the search log; empty means searchlog.sqlite3 in the index folder, off turns logging off"),
    Setting("SEARCH_LOG_DAYS", "KB_SEARCH_LOG_DAYS", 90,
            "days the search log keeps a search or click before deleting it"),
    Setting("SEARCH_LOG_CLIENT", "KB_SEARCH_LOG_CLIENT", 0,
            "1 also logs each searcher's IP address and user agent (personal data; off by default)"),
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
