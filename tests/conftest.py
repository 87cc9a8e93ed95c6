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

    return create_app({"INDEX_DIR": str(index_dir), "TESTING": True})


@pytest.fixture()
def client(app):
    """A test client of the app."""
    return app.test_client()


@pytest.fixture()
def runner():
    """click's runner for the `kb` command."""
    from click.testing import CliRunner

    return CliRunner()
