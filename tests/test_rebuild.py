"""Full rebuilds while writes go on: nothing written meanwhile is lost."""
from __future__ import annotations

import threading

import pytest

from kb.errors import ArticleNotFound
from kb.index import OpenIndex, read_meta
from kb.rebuild import rebuild

from test_store import NEW, _ids, _make_env


@pytest.fixture()
def env(tmp_path, corpus_dir):
    """A writable copy of the fixture corpus, its index and a Store over both."""
    return _make_env(tmp_path, corpus_dir)


def test_rebuild_keeps_writes_made_while_it_ran(env):
    corpus, index, store = env

    def meanwhile(loaded):
        # after the snapshot was read, before the swap: add, change and delete
        store.create(NEW)
        store.replace("shiroi-madoguchi-itaku", {"title": "白井市（更新）", "body": "更新後の本文。"})
        store.delete(["kakegawa-castle-shitei-kanri"])

    _, _, applied = rebuild([corpus], index, procs=1, show_progress=False, on_loaded=meanwhile)
    assert applied == {"changed": 2, "removed": 1}
    ix = OpenIndex(index)
    assert ix.get_article("ichikawa-madoguchi")["title"] == NEW["title"]
    assert ix.get_article("shiroi-madoguchi-itaku")["title"] == "白井市（更新）"
    with pytest.raises(ArticleNotFound):
        ix.get_article("kakegawa-castle-shitei-kanri")
    assert read_meta(index)["sources"] == [str(corpus.resolve())]


def test_rebuild_and_a_stream_of_writes_lose_nothing(env):
    corpus, index, store = env
    acknowledged, stop = [], threading.Event()

    def writer():
        n = 0
        while not stop.is_set():
            store.create({**NEW, "id": f"stream-{n}", "title": f"連続書き込み{n}"})
            acknowledged.append(f"stream-{n}")
            n += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(2):
            rebuild([corpus], index, procs=1, show_progress=False)
    finally:
        stop.set()
        t.join()
    assert acknowledged and set(acknowledged) <= _ids(index)


def test_rebuild_keeps_files_edited_by_hand_meanwhile(env):
    corpus, index, _ = env

    def meanwhile(loaded):
        (corpus / "by-hand.md").write_text("---\nid: by-hand\ntitle: 手で足した記事\n---\n本文。\n",
                                           encoding="utf-8")
        (corpus / "sapporo-hikkoshi-onestop.md").unlink()
        (corpus / "sub").mkdir()
        (corpus / "sub" / "memo.txt").write_text("メモの題\nメモの本文。\n", encoding="utf-8")

    _, _, applied = rebuild([corpus], index, procs=1, show_progress=False, on_loaded=meanwhile)
    assert applied == {"changed": 2, "removed": 1}
    ids = _ids(index)
    assert {"by-hand", "memo"} <= ids and "sapporo-hikkoshi-onestop" not in ids


def test_a_duplicate_id_added_meanwhile_resolves_as_a_fresh_load_would(env):
    corpus, index, _ = env

    def meanwhile(loaded):
        # "a-first.md" sorts before the article's own file, so it wins, as in a full load
        (corpus / "a-first.md").write_text(
            "---\nid: shiroi-madoguchi-itaku\ntitle: 先に読まれる重複\n---\n本文。\n",
            encoding="utf-8")

    rebuild([corpus], index, procs=1, show_progress=False, on_loaded=meanwhile)
    assert OpenIndex(index).get_article("shiroi-madoguchi-itaku")["title"] == "先に読まれる重複"
    again = rebuild([corpus], index, procs=1, show_progress=False)
    assert OpenIndex(index).get_article("shiroi-madoguchi-itaku")["title"] == "先に読まれる重複"
    assert again[2] == {"changed": 0, "removed": 0}
