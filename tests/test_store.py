"""The durable write path: files first, then the index; one writer; rebuilds keep writes."""
from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from kb.corpus import load_sources
from kb.errors import ArticleNotFound, BadArticle, Conflict
from kb.index import OpenIndex
from kb.search import search
from kb.rebuild import rebuild
from kb.store import JOURNAL_FILE, Store

NEW = {"id": "ichikawa-madoguchi", "title": "市川市の窓口受付を委託", "prefecture": "千葉県",
       "body": "市川市は住民票の窓口受付を民間事業者へ委託した。\n待ち時間が半分になった。",
       "categories": ["窓口業務"], "tags": ["待ち時間"], "date": "2024-05-01"}


def _make_env(folder: Path, corpus_dir: Path):
    corpus = folder / "corpus"
    shutil.copytree(corpus_dir, corpus)
    index = folder / "index"
    rebuild([corpus], index, procs=1, show_progress=False)
    return corpus, index, Store(corpus, index, lock_timeout=2)


@pytest.fixture()
def env(tmp_path, corpus_dir):
    """A writable copy of the fixture corpus, its index and a Store over both."""
    return _make_env(tmp_path, corpus_dir)


@pytest.fixture(scope="module")
def shared_env(tmp_path_factory, corpus_dir):
    """One writable corpus for tests that each touch only their own article ids."""
    return _make_env(tmp_path_factory.mktemp("shared"), corpus_dir)


def _ids(index: Path) -> set[str]:
    ix = OpenIndex(index)
    try:
        return {d["id"] for d in ix.searcher().all_stored_fields()}
    finally:
        ix.close()


def test_create_writes_the_file_then_the_index(env):
    corpus, index, store = env
    result = store.create(NEW)
    assert result.action == "created" and result.article["title"] == NEW["title"]
    path = corpus / "ichikawa-madoguchi.md"
    assert path.is_file()
    (again,) = load_sources([path]).articles
    assert again.body == NEW["body"] and again.tags == ["待ち時間"]
    ix = OpenIndex(index)
    assert search(ix, "市川市 窓口")["hits"][0]["id"] == "ichikawa-madoguchi"
    assert not (index / JOURNAL_FILE).exists()
    assert not list(corpus.glob(".*"))  # no temp files left behind


def test_replace_and_delete(env):
    corpus, index, store = env
    store.create(NEW)
    result = store.replace("ichikawa-madoguchi", {**NEW, "title": "改題した記事"})
    assert result.action == "replaced"
    ix = OpenIndex(index)
    assert ix.get_article("ichikawa-madoguchi")["title"] == "改題した記事"
    assert ix.doc_count() == 10
    store.delete(["ichikawa-madoguchi"])
    assert not (corpus / "ichikawa-madoguchi.md").exists()
    with pytest.raises(ArticleNotFound):
        OpenIndex(index).get_article("ichikawa-madoguchi")


def test_existing_and_missing_ids(env):
    _, _, store = env
    store.create(NEW)
    with pytest.raises(Conflict):
        store.create(NEW)
    with pytest.raises(ArticleNotFound):
        store.replace("no-such-article", {"title": "t", "body": "b"})
    with pytest.raises(ArticleNotFound):
        store.delete(["no-such-article"])
    with pytest.raises(BadArticle):
        store.replace("ichikawa-madoguchi", {**NEW, "id": "another-id"})


def test_replace_keeps_an_articles_file_and_converts_text_files(env):
    corpus, index, store = env
    # an article whose file name differs from its id stays in its file
    (corpus / "sub").mkdir()
    (corpus / "sub" / "some-name.md").write_text(
        "---\nid: named-otherwise\ntitle: 別名の記事\n---\n本文です。\n", encoding="utf-8")
    (corpus / "memo.txt").write_text("メモの題\nメモの本文。\n", encoding="utf-8")
    rebuild([corpus], index, procs=1, show_progress=False)
    store.replace("named-otherwise", {"title": "別名の記事（改）", "body": "新しい本文。"})
    assert "（改）" in (corpus / "sub" / "some-name.md").read_text(encoding="utf-8")
    assert not (corpus / "named-otherwise.md").exists()
    store.replace("memo", {"title": "メモの題", "body": "書き直した本文。"})
    assert not (corpus / "memo.txt").exists() and (corpus / "memo.md").exists()
    # a rebuild from the folder gives the same articles: the files are the truth
    rebuild([corpus], index, procs=1, show_progress=False)
    ix = OpenIndex(index)
    assert ix.get_article("named-otherwise")["title"] == "別名の記事（改）"
    assert ix.get_article("memo")["body"] == "書き直した本文。"


def test_articles_from_jsonl_or_other_folders_are_not_overwritten(env, tmp_path):
    corpus, index, store = env
    (corpus / "batch.jsonl").write_text(
        json.dumps({"id": "from-jsonl", "title": "一行の記事", "body": "本文。"},
                   ensure_ascii=False) + "\n", encoding="utf-8")
    rebuild([corpus], index, procs=1, show_progress=False)
    with pytest.raises(Conflict):
        store.replace("from-jsonl", {"title": "x", "body": "y"})
    with pytest.raises(Conflict):
        store.delete(["from-jsonl"])
    # the store refuses to write where a rebuild would not look
    elsewhere = Store(tmp_path / "elsewhere", index)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(Conflict):
        elsewhere.create(NEW)


@pytest.mark.parametrize("change", [
    {"id": "../etc/passwd"}, {"id": "%2e%2e"}, {"id": "a/b"}, {"id": "a\x00b"}, {"id": ""},
    {"id": " padded"}, {"id": "あ" * 70}, {"id": "README-first"}, {"id": ".hidden"},
    {"id": ["list"]}, {"title": ""}, {"title": "改行\nのある題"}, {"title": "制御\x07文字"},
    {"body": ""}, {"body": "NUL\x00"}, {"body": "bell\x07"}, {"body": "孤立\ud800サロゲート"},
    {"title": "\udfff"}, {"url": "javascript:alert(1)"}, {"url": "data:text/html,x"},
    {"categories": ["存在しない分類"]}, {"prefecture": "架空県"}, {"date": "2023-02-30"},
    {"unknown_field": 1}, {"tags": ["x"] * 51}, {"title": "長" * 301}, {"tags": ["a,b"]},
    {"tags": [","]},
])
def test_bad_articles_are_refused_before_anything_is_written(shared_env, change):
    corpus, index, store = shared_env
    before = sorted(p.name for p in corpus.iterdir())
    with pytest.raises(BadArticle):
        store.create({**NEW, **change})
    assert sorted(p.name for p in corpus.iterdir()) == before
    assert not (index / JOURNAL_FILE).exists()


AWKWARD = ["key: value", "---", "- item", "'quoted'", "#comment", "!tag", "&anchor *alias",
           "yes", "null", "2024-01-01", "{a: 1}", "[1, 2]", "  spaced  ", "％＄＃ 全角", "a" * 250,
           "\u2028 line separator", "tab\tinside", "<script>alert(1)</script>"]


def _as_tag(title: str) -> str:
    return title.strip()[:50].replace(",", "，")  # an ASCII comma would split a tag


def test_awkward_text_round_trips_through_the_file(shared_env):
    corpus, _, store = shared_env
    body = "---\n本文の中の区切り線\r\n---\nWindows の改行\r終わり\n\n\n"
    items = [{**NEW, "id": f"awkward-{n}", "title": title, "body": body,
              "source": title.strip()[:100], "tags": [_as_tag(title)]}
             for n, title in enumerate(AWKWARD) if "\u2028" not in title and "\t" not in title]
    results = store.upsert(items)  # one lock, one commit for all of them
    for item, result in zip(items, results):
        (again,) = load_sources([corpus / f"{result.id}.md"]).articles
        assert again.title == item["title"].strip()
        assert again.tags == [_as_tag(item["title"])]
        assert again.body == "---\n本文の中の区切り線\n---\nWindows の改行\n終わり"
    for one_line_only in (AWKWARD[-3], AWKWARD[-2]):  # U+2028 and a tab: not in a title
        with pytest.raises(BadArticle):
            store.create({**NEW, "id": "awkward-ls", "title": one_line_only})


def test_writes_from_many_threads_are_serialised_and_all_kept(env):
    corpus, index, store = env
    store.lock_timeout = 60  # here every write must wait its turn, however long the queue
    errors = []

    def work(n):
        try:
            for k in range(4):
                store.create({**NEW, "id": f"thread-{n}-{k}", "title": f"スレッド{n}の記事{k}"})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ids = _ids(index)
    assert {f"thread-{n}-{k}" for n in range(6) for k in range(4)} <= ids
    assert len(list(corpus.glob("thread-*.md"))) == 24


def test_a_write_killed_between_file_and_index_is_finished_by_the_next_one(env):
    corpus, index, store = env
    # What a writer killed after renaming the file in leaves: the intent and the file.
    (index / JOURNAL_FILE).write_text(json.dumps({
        "pid": 1, "corpus": str(corpus),
        "entries": [{"id": "half-done", "target": str(corpus / "half-done.md"), "old": None},
                    {"id": "kakegawa-castle-shitei-kanri", "target": None,
                     "old": str(corpus / "kakegawa-castle-shitei-kanri.md")}]}), encoding="utf-8")
    (corpus / "half-done.md").write_text("---\nid: half-done\ntitle: 途中で止まった書き込み\n---\n本文。\n",
                                         encoding="utf-8")
    (corpus / "kakegawa-castle-shitei-kanri.md").unlink()  # a delete that got as far as the file
    (corpus / ".stale.md.123-1-1.kbtmp").write_text("never renamed in", encoding="utf-8")
    assert sorted(store.recover()) == ["half-done", "kakegawa-castle-shitei-kanri"]
    ids = _ids(index)
    assert "half-done" in ids and "kakegawa-castle-shitei-kanri" not in ids
    assert not (index / JOURNAL_FILE).exists()
    assert not (corpus / ".stale.md.123-1-1.kbtmp").exists()


def test_a_failed_index_update_puts_the_files_back(env, monkeypatch):
    corpus, index, store = env
    store.create(NEW)
    original = (corpus / "ichikawa-madoguchi.md").read_bytes()
    import kb.store

    real = kb.store.update_generation
    calls = []

    def broken(gen, articles=(), remove_ids=(), timeout=5.0):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk on fire")
        return real(gen, articles, remove_ids, timeout)

    monkeypatch.setattr(kb.store, "update_generation", broken)
    with pytest.raises(RuntimeError):
        store.replace("ichikawa-madoguchi", {**NEW, "title": "失敗する更新"})
    assert (corpus / "ichikawa-madoguchi.md").read_bytes() == original
    assert OpenIndex(index).get_article("ichikawa-madoguchi")["title"] == NEW["title"]


def test_kb_add_and_remove(env, runner, tmp_path):
    from kb.cli import cli

    corpus, index, _ = env
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "batch.jsonl").write_text("\n".join(json.dumps(a, ensure_ascii=False) for a in [
        {**NEW, "id": "cli-1"}, {**NEW, "id": "cli-2", "title": "二件目"},
        {"id": "broken"}]) + "\n", encoding="utf-8")
    result = runner.invoke(cli, ["add", str(incoming / "batch.jsonl"), "--index", str(index),
                                 "--corpus", str(corpus)])
    assert result.exit_code == 0, result.output
    assert "added cli-1" in result.output and "skipped" in result.output
    assert (corpus / "cli-1.md").is_file() and (corpus / "cli-2.md").is_file()
    again = runner.invoke(cli, ["add", str(incoming / "batch.jsonl"), "--index", str(index),
                                "--corpus", str(corpus)])
    assert "replaced cli-1" in again.output
    result = runner.invoke(cli, ["remove", "cli-1", "--index", str(index), "--corpus",
                                 str(corpus)])
    assert result.exit_code == 0 and "removed cli-1" in result.output
    assert {"cli-2"} <= _ids(index) and "cli-1" not in _ids(index)
    missing = runner.invoke(cli, ["remove", "cli-1", "--index", str(index), "--corpus",
                                  str(corpus)])
    assert missing.exit_code == 1 and "見つかりません" in missing.output


def test_a_file_holding_another_article_is_never_overwritten(env):
    corpus, index, store = env
    (corpus / "taken.md").write_text("---\nid: someone-else\ntitle: 別の記事\n---\n本文。\n",
                                     encoding="utf-8")
    for write in (lambda: store.create({**NEW, "id": "taken"}),
                  lambda: store.replace("taken", {"title": "t", "body": "b"}),
                  lambda: store.delete(["taken"])):
        with pytest.raises(Conflict):
            write()
    assert "someone-else" in (corpus / "taken.md").read_text(encoding="utf-8")
