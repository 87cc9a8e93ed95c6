"""kb.index: build with an atomic generation swap, open, refuse bad indexes, update."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil

import pytest

from kb import index
from kb.analysis import sudachi_analyzer
from kb.corpus import Article
from kb.errors import ArticleNotFound, IndexIncompatible, IndexMissing
from kb.search import search


def article(id_, title, body, **fields):
    return Article(id=id_, title=title, body=body, **fields)


OLD = [
    article("old-madoguchi", "旧版の窓口記事", "旧版の索引にだけある窓口業務委託の記事。", date="2021-05-01",
            prefecture="千葉県"),
    article("old-call", "旧版のコールセンター記事", "旧版のコールセンターは夜間も受け付ける。",
            date="2022-02-01", prefecture="秋田県"),
]
NEW = [
    article("new-castle", "新版の城の記事", "新版の索引にだけある掛川城の指定管理の記事。", date="2023-06-01",
            prefecture="静岡県"),
]


def ids(ix, q):
    return sorted(h["id"] for h in search(ix, q, per_page=100)["hits"])


@pytest.fixture
def opened():
    """Open indexes through this and they are closed after the test."""
    handles = []

    def _open(path):
        ix = index.OpenIndex(path)
        handles.append(ix)
        return ix

    yield _open
    for ix in handles:
        ix.close()


def generations(path):
    return sorted(p.name for p in path.iterdir() if p.name.startswith(index.GENERATION_PREFIX))


# --- build ---------------------------------------------------------------------------


def test_build_writes_meta_and_one_generation(index_dir, corpus_articles):
    meta = json.loads((index_dir / "meta.json").read_text(encoding="utf-8"))
    assert meta["schema_version"] == index.SCHEMA_VERSION
    assert meta["analysis"] == index.ANALYSIS_SETTINGS
    assert meta["articles"] == len(corpus_articles) == 9
    assert meta["kb_version"]
    assert generations(index_dir) == [meta["generation"]]
    assert (index_dir / meta["generation"]).is_dir()
    assert not list(index_dir.glob(".building-*"))


def test_build_returns_stats(tmp_path):
    stats = index.build(OLD, tmp_path / "ix", procs=1, show_progress=False)
    assert stats.articles == 2
    assert stats.generation == index.read_meta(tmp_path / "ix")["generation"]
    assert stats.seconds >= stats.write_seconds >= 0


def test_opened_index_counts_and_returns_articles(kb_index):
    assert kb_index.doc_count() == 9
    doc = kb_index.get_article("shiroi-madoguchi-itaku")
    assert doc["title"].startswith("白井市が市民課の窓口業務委託")
    assert doc["prefecture"] == "千葉県" and doc["municipality"] == "白井市"
    assert doc["categories"] == "窓口業務"
    assert doc["body"].startswith("千葉県白井市は")  # stored as plain text
    with pytest.raises(ArticleNotFound):
        kb_index.get_article("no-such-article")


@pytest.mark.parametrize("article_id, year", [
    ("akita-shimin-call-center", 2023),  # 2023-04-01: first day of fiscal 2023
    ("shiroi-madoguchi-itaku", 2021),  # 2022-03-20: still fiscal 2021
    ("minobu-furusato-nozei", 2023),  # 2024-01-10
    ("hamamatsu-toshokan-shitei-kanri", 2019),
])
def test_stored_year_is_the_fiscal_year(kb_index, article_id, year):
    assert kb_index.get_article(article_id)["year"] == year


def test_rebuild_swaps_generation_and_old_searches_keep_working(tmp_path, opened):
    path = tmp_path / "ix"
    index.build(OLD, path, procs=1, show_progress=False)
    old = opened(path)
    old_gen = old.generation_path
    assert ids(old, "窓口") == ["old-madoguchi"]

    index.build(NEW, path, procs=1, show_progress=False)
    meta = index.read_meta(path)
    assert meta["generation"] != old_gen.name
    assert len(generations(path)) == 2  # the one before stays for readers mid-swap

    # a reader opened before the swap still answers from its own snapshot
    assert ids(old, "窓口") == ["old-madoguchi"]
    assert old.doc_count() == 2
    # a new reader sees the new content
    assert ids(opened(path), "掛川城") == ["new-castle"]
    assert ids(opened(path), "窓口") == []


def test_only_two_generations_are_kept(tmp_path):
    path = tmp_path / "ix"
    for _ in range(3):
        index.build(OLD, path, procs=1, show_progress=False)
    gens = generations(path)
    assert len(gens) == 2 and index.read_meta(path)["generation"] == gens[-1]


def test_refresh_picks_up_a_swapped_generation(tmp_path, opened):
    path = tmp_path / "ix"
    index.build(OLD, path, procs=1, show_progress=False)
    ix = opened(path)
    assert ix.refresh() is False  # nothing changed
    index.build(NEW, path, procs=1, show_progress=False)
    assert ix.refresh() is True
    assert ix.generation_path.name == index.read_meta(path)["generation"]
    assert ids(ix, "掛川城") == ["new-castle"]
    assert ids(ix, "窓口") == []
    assert ix.refresh() is False


def test_failed_build_leaves_the_previous_index_serving(tmp_path, opened):
    path = tmp_path / "ix"
    index.build(OLD, path, procs=1, show_progress=False)
    meta_before = (path / "meta.json").read_text(encoding="utf-8")
    serving = opened(path)

    def explode(gen_dir, articles, analysed):
        assert gen_dir.name.startswith(".building-")
        assert len(analysed) == len(articles) == 1
        raise RuntimeError("disk full while writing the related model")

    with pytest.raises(RuntimeError, match="disk full"):
        index.build(NEW, path, procs=1, show_progress=False, after_write=explode)

    assert (path / "meta.json").read_text(encoding="utf-8") == meta_before
    assert not list(path.glob(".building-*"))
    assert len(generations(path)) == 1
    assert ids(serving, "窓口") == ["old-madoguchi"]
    assert serving.refresh() is False
    fresh = opened(path)
    assert ids(fresh, "窓口") == ["old-madoguchi"]
    assert ids(fresh, "掛川城") == []


def test_build_with_after_write_extra_lands_in_meta(tmp_path):
    def related(gen_dir, articles, analysed):
        (gen_dir / "related.json").write_text("{}", encoding="utf-8")
        return {"related": {"articles": len(articles)}}

    path = tmp_path / "ix"
    stats = index.build(OLD, path, procs=1, show_progress=False, after_write=related)
    meta = index.read_meta(path)
    assert meta["related"] == {"articles": 2}
    assert stats.extra == {"related": {"articles": 2}}
    assert (path / meta["generation"] / "related.json").is_file()


def test_a_stale_building_folder_of_a_dead_process_is_removed(tmp_path):
    path = tmp_path / "ix"
    path.mkdir()
    # pid 2**22 + 1 is above Linux's pid_max ceiling, so it cannot be running
    stale = path / f".building-gen-20200101-000000-000000-{2 ** 22 + 1}"
    stale.mkdir()
    mine = path / f".building-gen-20200101-000000-000000-{os.getpid()}"
    mine.mkdir()
    index.build(OLD, path, procs=1, show_progress=False)
    assert not stale.exists()
    assert mine.exists()  # ours (this pid) is never treated as stale


# --- opening -------------------------------------------------------------------------


def test_missing_index_raises_index_missing(tmp_path):
    with pytest.raises(IndexMissing) as exc:
        index.OpenIndex(tmp_path / "nowhere")
    assert exc.value.status == 503 and exc.value.hint


def test_incompatible_schema_raises_with_a_rebuild_hint(tmp_path):
    path = tmp_path / "ix"
    index.build(OLD, path, procs=1, show_progress=False)
    meta = index.read_meta(path)
    meta["schema_version"] = index.SCHEMA_VERSION + 1
    (path / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(IndexIncompatible) as exc:
        index.OpenIndex(path)
    assert exc.value.status == 503 and exc.value.code == "index_incompatible"
    assert "rebuild" in exc.value.hint and str(path) in exc.value.hint


def test_changed_analysis_settings_are_incompatible(tmp_path):
    path = tmp_path / "ix"
    index.build(OLD, path, procs=1, show_progress=False)
    meta = index.read_meta(path)
    meta["analysis"]["analysis_version"] = -1
    (path / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(IndexIncompatible):
        index.OpenIndex(path)
    with pytest.raises(IndexIncompatible):
        index.update_articles(path, NEW)


def test_unreadable_meta_is_incompatible(tmp_path):
    (tmp_path / "meta.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(IndexIncompatible):
        index.OpenIndex(tmp_path)


def test_meta_pointing_at_a_missing_generation_is_incompatible(tmp_path):
    path = tmp_path / "ix"
    index.build(OLD, path, procs=1, show_progress=False)
    meta = index.read_meta(path)
    meta["generation"] = "gen-missing"
    (path / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(IndexIncompatible):
        index.OpenIndex(path)


# --- incremental updates -------------------------------------------------------------


def test_update_articles_adds_replaces_and_removes(tmp_path, opened):
    path = tmp_path / "ix"
    index.build(OLD, path, procs=1, show_progress=False)

    added = article("added-furusato", "追加した記事", "ふるさと納税の返礼品を追加で紹介する。",
                    date="2024-04-01", prefecture="山梨県", categories=["ふるさと納税"])
    assert index.update_articles(path, [added]) == {"added": 1, "removed": 0}
    ix = opened(path)
    assert ix.doc_count() == 3
    assert ids(ix, "返礼品") == ["added-furusato"]
    assert ix.get_article("added-furusato")["year"] == 2024

    replaced = article("old-madoguchi", "差し替えた窓口記事", "差し替え後は引越し手続きの記事。")
    assert index.update_articles(path, [replaced]) == {"added": 1, "removed": 0}
    ix = opened(path)
    assert ix.doc_count() == 3
    assert ids(ix, "引っ越し") == ["old-madoguchi"]
    assert ids(ix, "業務委託") == []
    assert ix.get_article("old-madoguchi")["title"] == "差し替えた窓口記事"

    assert index.update_articles(path, remove_ids=["old-call", "never-existed"]) == {
        "added": 0, "removed": 1}
    ix = opened(path)
    assert ix.doc_count() == 2
    assert ids(ix, "コールセンター") == []
    with pytest.raises(ArticleNotFound):
        ix.get_article("old-call")


def test_open_searcher_sees_an_added_article(tmp_path, opened):
    path = tmp_path / "ix"
    index.build(OLD, path, procs=1, show_progress=False)
    ix = opened(path)
    assert ids(ix, "返礼品") == []  # the thread's searcher now exists
    index.update_articles(path, [article("added", "追加", "ふるさと納税の返礼品。")])
    assert ix.refresh() is False  # an update is a commit in the same generation
    assert ids(ix, "返礼品") == ["added"]
    assert ix.doc_count() == 3


def test_open_searcher_sees_replaced_and_removed_articles(tmp_path, opened):
    path = tmp_path / "ix"
    index.build(OLD, path, procs=1, show_progress=False)
    ix = opened(path)
    assert ix.doc_count() == 2  # the thread's searcher now exists
    replaced = article("old-madoguchi", "差し替えた窓口記事", "差し替え後の窓口の記事。")
    index.update_articles(path, [replaced], remove_ids=["old-call"])
    hits = search(ix, "窓口")["hits"]
    assert [(h["id"], h["title"]) for h in hits] == [("old-madoguchi", "差し替えた窓口記事")]
    assert ids(ix, "コールセンター") == []
    assert ix.doc_count() == 1


def test_update_on_missing_index_raises_index_missing(tmp_path):
    with pytest.raises(IndexMissing):
        index.update_articles(tmp_path, NEW)


# --- schema and documents ------------------------------------------------------------


def test_article_fields_make_the_whoosh_document():
    a = article("x", "題", "本文", date="2024-03-31", prefecture="静岡県", municipality="掛川市",
                categories=["窓口業務", "防災"], tags=["BPO"])
    doc = index.article_fields(a)
    assert doc["year"] == 2023  # March belongs to the fiscal year that began last April
    assert doc["categories"] == "窓口業務,防災"
    assert doc["keywords"] == "静岡県 掛川市 窓口業務 防災 BPO"
    assert "url" not in doc and "source" not in doc  # None values are left out
    bare = index.article_fields(article("y", "題", "本文"))
    assert "date" not in bare and "year" not in bare and "prefecture" not in bare


def test_schema_pickles_with_the_index(tmp_path, opened):
    # the schema, analyzer included, is pickled into the TOC and read back on open
    path = tmp_path / "ix"
    index.build(OLD, path, procs=1, show_progress=False)
    schema = opened(path).ix.schema
    assert schema.names() == index.make_schema().names()
    for name in ("title", "body", "keywords"):
        assert schema[name].analyzer == sudachi_analyzer()


# --- bulk segment writing (kb.bulkwrite) -----------------------------------------------


from dataclasses import replace as _replace  # noqa: E402

from whoosh import index as whoosh_index  # noqa: E402
from whoosh.filedb.filestore import FileStorage  # noqa: E402
from whoosh.writing import SegmentWriter  # noqa: E402

from kb import bulkwrite  # noqa: E402
from kb.analysis import analyze  # noqa: E402


@pytest.fixture(scope="module")
def many_articles(corpus_articles):
    """The fixture corpus twenty times over: common terms get several posting blocks."""
    return [_replace(a, id=f"{a.id}-{i}", title=a.title if i % 3 else a.title + a.title)
            for i in range(20) for a in corpus_articles]


def _whoosh_segment(path, articles, compound=True):
    """Index articles the plain Whoosh way (analysers, Whoosh's own pool and writer)."""
    path.mkdir(exist_ok=True)
    whoosh_index.create_in(str(path), index.make_schema()).close()
    ix = whoosh_index.open_dir(str(path))
    writer = SegmentWriter(ix, compound=compound)
    for a in articles:
        writer.add_document(**index.article_fields(a))
    writer.commit(merge=False)
    ix.close()


def _bulk_segment(path, articles, exact, preposted=True):
    path.mkdir()
    whoosh_index.create_in(str(path), index.make_schema()).close()
    ix = whoosh_index.open_dir(str(path))
    writer = bulkwrite.BulkSegmentWriter(ix, exact=exact, compound=False)
    for i, a in enumerate(articles):
        if not preposted and i % 2:  # plain text: the bulk writer runs the analyser
            writer.add_document(**index.article_fields(a))
            continue
        tm, bm = analyze(a.title), analyze(a.body)
        derived = index.search_fields(a.title, a.body, tm, bm)
        writer.add_document(**index.article_fields(a, index.postings(tm), index.postings(bm),
                                                   derived))
    segment = writer.finish()
    ix.close()
    storage = FileStorage(str(path))
    whoosh_index.TOC(index.make_schema(), [segment], 1).write(storage, "MAIN")


def _segment_files(path):
    return {p.suffix if not p.name.endswith(".col") else ".".join(p.name.split(".")[-2:]):
            p.read_bytes() for p in path.iterdir() if p.name.startswith("MAIN_") and p.suffix}


def test_exact_bulk_writing_makes_the_same_files_as_whoosh(tmp_path, many_articles):
    _whoosh_segment(tmp_path / "whoosh", many_articles, compound=False)
    _bulk_segment(tmp_path / "bulk", many_articles, exact=True)
    plain, bulk = _segment_files(tmp_path / "whoosh"), _segment_files(tmp_path / "bulk")
    assert ".trm" in plain and ".pst" in plain
    assert plain.keys() == bulk.keys()
    for ext in plain:
        assert plain[ext] == bulk[ext], ext


def _reader_view(reader):
    """Everything a reader can say about postings, lengths and stored fields."""
    terms = {}
    for fieldname, btext in reader.all_terms():
        m = reader.postings(fieldname, btext)
        rows = []
        while m.is_active():
            rows.append((m.id(), m.weight(), m.value()))
            m.next()
        terms[fieldname, btext] = (rows, reader.doc_frequency(fieldname, btext),
                                   reader.frequency(fieldname, btext))
    schema = index.make_schema()
    fields = [f for f in schema.names() if schema[f].scorable]
    docs = reader.doc_count_all()
    lengths = {f: ([reader.doc_field_length(d, f) for d in range(docs)], reader.field_length(f),
                   reader.min_field_length(f), reader.max_field_length(f)) for f in fields}
    stored = [reader.stored_fields(d) for d in range(docs)]
    return terms, lengths, stored


def _term_infos(reader):
    out = {}
    for fieldname, btext in reader.all_terms():
        ti = reader.term_info(fieldname, btext)
        out[fieldname, btext] = (ti.weight(), ti.doc_frequency(), ti.min_length(),
                                 ti.max_length(), ti.max_weight(), ti.min_id(), ti.max_id())
    return out


@pytest.mark.parametrize("preposted", [True, False])
def test_fast_bulk_segment_reads_like_whoosh(tmp_path, many_articles, preposted):
    _whoosh_segment(tmp_path / "whoosh", many_articles)
    _bulk_segment(tmp_path / "bulk", many_articles, exact=False, preposted=preposted)
    plain = whoosh_index.open_dir(str(tmp_path / "whoosh"))
    bulk = whoosh_index.open_dir(str(tmp_path / "bulk"))
    with plain.reader() as r1, bulk.reader() as r2:
        view = _reader_view(r1)
        assert view == _reader_view(r2)
        assert _term_infos(r1) == _term_infos(r2)
    # the corpus is big enough for posting lists of several blocks
    assert any(len(rows) > bulkwrite.BLOCK_LIMIT for rows, _, _ in view[0].values())
    plain.close()
    bulk.close()


def test_a_build_in_many_segments_searches_like_plain_whoosh(tmp_path, many_articles,
                                                             monkeypatch, opened):
    monkeypatch.setattr(index, "FLUSH_POSTINGS", 3000)  # several segments per worker
    index.build(many_articles, tmp_path / "bulk", procs=2, show_progress=False)
    # the same index folder, its generation rewritten by plain Whoosh
    shutil.copytree(tmp_path / "bulk", tmp_path / "plain")
    gen = index.generation_dir(tmp_path / "plain")
    shutil.rmtree(gen)
    gen.mkdir()
    _whoosh_segment(gen, many_articles)
    bulk, plain = opened(tmp_path / "bulk"), opened(tmp_path / "plain")
    assert len(bulk.ix._segments()) > 2 and len(plain.ix._segments()) == 1
    with bulk.ix.reader() as r1, plain.ix.reader() as r2:
        assert _reader_view(r1) == _reader_view(r2)
    for q in ["窓口業務委託", "掛川城", "コールセンター 夜間", "指定管理者制度", "給付金"]:
        got, want = search(bulk, q, per_page=50), search(plain, q, per_page=50)
        assert got["total"] == want["total"] > 0
        assert [(h["id"], round(h["score"], 6)) for h in got["hits"]] == \
               [(h["id"], round(h["score"], 6)) for h in want["hits"]]
    # incremental updates keep working on the bulk-written segments
    index.update_articles(tmp_path / "bulk", [article("added", "追加の記事", "掛川城の追加記事。")],
                          remove_ids=[many_articles[0].id])
    bulk.refresh()
    assert "added" in ids(bulk, "掛川城")
    assert bulk.doc_count() == len(many_articles)
    # and Whoosh's own merge reads them back (merge every two segments of a tier)
    monkeypatch.setattr(index, "MERGE_FACTOR", 2)
    before = len(bulk.ix._segments())
    index.update_articles(tmp_path / "bulk", [article("added2", "二つ目の記事", "掛川城の記事。")])
    bulk.refresh()
    assert len(bulk.ix._segments()) < before
    assert {"added", "added2"} <= set(ids(bulk, "掛川城"))
    assert ids(bulk, "窓口業務委託") == sorted(
        a.id for a in many_articles[1:] if a.id in ids(plain, "窓口業務委託"))


def test_commits_merge_only_small_segments(tmp_path, corpus_articles, monkeypatch):
    """Build segments are left alone by writes; the small ones writes make are merged."""
    index.build(corpus_articles, tmp_path, procs=1, show_progress=False)
    monkeypatch.setattr(index, "MERGE_FACTOR", 2)
    monkeypatch.setattr(index, "MERGE_MAX_ARTICLES", len(corpus_articles))
    opened = index.OpenIndex(tmp_path)
    built = {s.segment_id() for s in opened.ix._segments()}
    opened.close()
    for n in range(4):  # one-article segments pile up and merge in pairs
        index.update_articles(tmp_path, [dataclasses.replace(
            corpus_articles[0], id=f"added-{n}", path=None)])
    opened = index.OpenIndex(tmp_path)
    segments = opened.ix._segments()
    opened.close()
    assert built <= {s.segment_id() for s in segments}  # the build's segment untouched
    assert len(segments) < len(built) + 4  # while the small ones were merged
