"""Run the Flask app under gunicorn, the production WSGI server behind `kb serve`."""
from __future__ import annotations

import gc

from gunicorn.app.base import BaseApplication

from . import create_app
from .hardening import make_worker_class


class _Gunicorn(BaseApplication):
    def __init__(self, app, options: dict):
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.application


def serve(index_dir: str, host: str, port: int, workers: int) -> None:
    """Serve the app with `workers` processes forked after the dictionary is loaded."""
    from kb.analysis import warm_up

    app = create_app({"INDEX_DIR": index_dir})
    warm_up()  # open the Sudachi dictionary once, before forking (shared pages)
    from kb.autocomplete import warm

    warm(index_dir)  # the suggestion tables too: every worker starts with them
    from kb.search import warm_caches

    warm_caches(index_dir)  # lengths, facets and the commonest postings, shared likewise
    # What is loaded so far lives as long as the server: out of the collector's sight
    # it is never scanned again (shorter pauses) and its pages stay shared after fork.
    gc.collect()
    gc.freeze()
    _Gunicorn(app, {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": 4,
        "worker_class": make_worker_class(),  # gthread, with errors in Japanese
        "limit_request_line": 8190,  # gunicorn's most: ~900 kanji; the app says 1,000
        "preload_app": True,
        "timeout": 60,
        "graceful_timeout": 10,
        "errorlog": "-",
        "loglevel": "warning",
    }).run()
