"""Helpers for tests in a real browser: a live `kb serve` and Debian's headless Chromium.

The fixtures `live_server`, `browser` and `browser_page` (tests/conftest.py) are built
from these; another test can start its own server over its own index with
`start_server(index_dir)` (a hostile-text corpus, say) and reuse `browser_page`'s way
of opening pages with `new_page(browser)`.

Chromium is Debian's package at /usr/bin/chromium (`make test` installs it as root);
no browser is ever downloaded. Without it, or without Playwright, the tests skip and
say why (`pytest -rs` shows the reason).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = os.environ.get("KB_CHROMIUM", "/usr/bin/chromium")
# Headless and quiet: on a closed network Chromium's own background connections only fail.
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps",
    "--disable-extensions", "--metrics-recording-only", "--mute-audio",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 30.0
LIVE_WRITE_TOKEN = "live-editor-token"  # the write token of the `live_server` fixture


def skip_reason() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[test]')"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return (f"Chromium not found at {CHROMIUM}: run `make test` as root to install "
                "Debian's chromium package, or `apt-get install chromium`")
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_index(corpus: Path, index_dir: Path) -> Path:
    """Build an index the way `kb index` does (related-cases model included)."""
    subprocess.run([sys.executable, "-m", "kb.cli", "index", str(corpus), "--index",
                    str(index_dir), "--procs", "1", "--quiet"],
                   check=True, cwd=ROOT, capture_output=True, timeout=120)
    return index_dir


@dataclass
class LiveServer:
    """A running `kb serve` (gunicorn) and what a test needs to know about it."""

    url: str
    index_dir: Path
    process: subprocess.Popen
    env: dict = field(default_factory=dict)
    log_file: Path | None = None
    _log: object = None  # the open server log, closed by stop()

    def get_json(self, path: str, headers: dict | None = None) -> dict:
        """GET a JSON endpoint of the server."""
        request = urllib.request.Request(self.url + path, headers=headers or {})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read().decode("utf-8"))

    def stop(self) -> None:
        """Stop gunicorn (its master ends the workers) and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None


def start_server(index_dir: Path, *, env: dict | None = None, workers: int = 2,
                 log_file: Path | None = None) -> LiveServer:
    """Start `kb serve` on a free port over index_dir and wait until /healthz answers."""
    port = free_port()
    server_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    out = open(log_file, "wb") if log_file else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "kb.cli", "serve", "--index", str(index_dir), "--host",
         "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        cwd=ROOT, env=server_env, stdout=out, stderr=subprocess.STDOUT)
    server = LiveServer(f"http://127.0.0.1:{port}", Path(index_dir), process, env or {}, log_file,
                        out if log_file else None)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"kb serve exited with {process.returncode}"
                               + (f"; see {log_file}" if log_file else ""))
        try:
            if server.get_json("/healthz").get("ok"):
                return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"kb serve did not answer within {START_TIMEOUT:.0f}s")
        time.sleep(0.1)


def launch_browser(playwright):
    """Launch Debian's Chromium headless through Playwright (no download, ever)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=CHROMIUM_ARGS)


def new_page(browser, **context_options):
    """A fresh page (own cookies and storage) with Japanese locale and short timeouts."""
    options = {"locale": "ja-JP", "viewport": {"width": 1280, "height": 900},
               "accept_downloads": True, **context_options}
    context = browser.new_context(**options)
    context.set_default_timeout(10_000)
    page = context.new_page()
    return context, page


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot under tests/artifacts/ and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

