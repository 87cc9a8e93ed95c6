"""Shared fixtures: the tiny Japanese test corpus and one real index built from it."""
from __future__ import annotations

from pathlib import Path

import pytest

import kb.index
from kb.corpus import load_sources

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The fixture corpus: nine short Markdown articles and categories.yml."""
    return DATA / "corpus"


@pytest.fixture()
def writable_copy(tmp_path, corpus_dir) -> tuple[Path, Path]:
    """(corpus, index): a copy of the fixture corpus to write to, and its full build."""
    import shutil

    from kb.rebuild import rebuild

    corpus = tmp_path / "corpus"
    shutil.copytree(corpus_dir, corpus)
    index = tmp_path / "index"
    rebuild([corpus], index, procs=1, show_progress=False)
    return corpus, index


@pytest.fixture(scope="session")
def corpus_articles(corpus_dir):
    """The fixture corpus loaded as Article objects."""
    return load_sources([corpus_dir]).articles


@pytest.fixture(scope="session")
def index_dir(corpus_articles, tmp_path_factory) -> Path:
    """A real on-disk index of the fixture corpus, built once per test session."""
    path = tmp_path_factory.mktemp("index")
    kb.index.build(corpus_articles, path, procs=1, show_progress=False)
    return path


@pytest.fixture(scope="session")
def kb_index(index_dir):
    """The fixture index, opened once per test session (read-only: do not update it)."""
    ix = kb.index.OpenIndex(index_dir)
    yield ix
    ix.close()


@pytest.fixture(scope="session")
def app(index_dir):
    """The Flask app over the fixture index."""
    from web import create_app

    log = index_dir.parent / f"{index_dir.name}-searchlog.sqlite3"
    return create_app({"INDEX_DIR": str(index_dir), "TESTING": True, "SEARCH_LOG": str(log)})


@pytest.fixture()
def client(app):
    """A test client of the app."""
    return app.test_client()


@pytest.fixture()
def runner():
    """click's runner for the `kb` command."""
    from click.testing import CliRunner

    return CliRunner()


# --- a real server and a real browser (helpers in tests/browser.py) ----------------------

@pytest.fixture(scope="session")
def live_server(corpus_dir, tmp_path_factory):
    """`kb serve` (gunicorn, 2 workers) on a free 127.0.0.1 port over tests/data/corpus.

    Its search log, corpus copy and server log live in a temporary folder; the write
    token is browser.LIVE_WRITE_TOKEN.
    """
    import shutil

    import browser as kb_browser

    base = tmp_path_factory.mktemp("live")
    shutil.copytree(corpus_dir, base / "corpus")
    index = kb_browser.build_index(base / "corpus", base / "index")
    server = kb_browser.start_server(index, log_file=base / "server.log", env={
        "KB_SEARCH_LOG": str(base / "searchlog.sqlite3"), "KB_CORPUS": str(base / "corpus"),
        "KB_WRITE_TOKEN": kb_browser.LIVE_WRITE_TOKEN, "KB_READ_TOKEN": "", "KB_CONFIG": ""})
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, through Playwright; skipped (with the reason) when missing."""
    import browser as kb_browser

    reason = kb_browser.skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = kb_browser.launch_browser(playwright)
        yield chromium
        chromium.close()


@pytest.fixture()
def browser_page(browser):
    """A fresh browser page (its own cookies), closed after the test."""
    import browser as kb_browser

    context, page = kb_browser.new_page(browser)
    yield page
    context.close()
