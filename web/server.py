"""Run the Flask app under gunicorn, the production WSGI server behind `kb serve`."""
from __future__ import annotations

from gunicorn.app.base import BaseApplication

from . import create_app


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
    _Gunicorn(app, {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": 4,
        "worker_class": "gthread",
        "preload_app": True,
        "timeout": 60,
        "graceful_timeout": 10,
        "errorlog": "-",
        "loglevel": "warning",
    }).run()
