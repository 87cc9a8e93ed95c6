"""kb.ranking: BM25 over the index's postings, matched and scored with arrays."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from whoosh import query as wq

from kb import ranking
from kb.ranking import Ranker, ranker, term_weight


@pytest.fixture()
def r(kb_index) -> Ranker:
    return ranker(kb_index)


def docnum(r, article_id):
    (found,) = r.searcher.docs_for_query(wq.Term("id", article_id))
    return found


def test_one_ranker_per_searcher(kb_index, r):
    assert ranker(kb_index) is r


def test_postings_and_docs_agree_with_whoosh(r):
    for q in (wq.Term("body", "窓口"), wq.And([wq.Term("body", "窓口"), wq.Term("body", "委託")]),
              wq.Or([wq.Term("body", "掛川"), wq.Term("title", "図書館")]),
              wq.Phrase("body", ["指定", "管理", "料"]), wq.Every(), wq.NumericRange("year", 2023, 2023)):
        assert list(r.docs(q)) == sorted(r.searcher.docs_for_query(q)), q
    assert len(r.docs(wq.Term("body", "宇宙"))) == 0
    assert len(r.docs(wq.NullQuery)) == 0


def test_text_is_title_and_body_as_one_field(r):
    ids, tf = r.postings("text", "窓口")
    title, body = r.postings("title", "窓口"), r.postings("body", "窓口")
    assert list(ids) == sorted(set(title[0]) | set(body[0]))
    assert tf.sum() == title[1].sum() + body[1].sum()
    assert np.array_equal(r.lengths("text"), r.lengths("title") + r.lengths("body"))
    assert r.known("text", "窓口") and not r.known("text", "宇宙")
    phrase = ["指定", "管理", "料"]
    assert list(r.docs(wq.Phrase("text", phrase))) == sorted(
        set(r.searcher.docs_for_query(wq.Phrase("title", phrase)))
        | set(r.searcher.docs_for_query(wq.Phrase("body", phrase))))


def test_term_score_is_bm25_with_lucene_idf(r):
    ids, tf = r.postings("text", "窓口")
    k1, b = ranking.FIELD_PARAMS["text"]
    lengths = r.lengths("text")
    avg = lengths.sum() / r.doc_count
    idf = math.log(1 + (r.doc_count - len(ids) + 0.5) / (len(ids) + 0.5))
    expected = idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[ids] / avg))
    scores = r.score(wq.Term("text", "窓口", boost=2.0))
    assert np.allclose(scores[ids], 2.0 * expected)
    assert np.count_nonzero(scores) == len(ids)


def test_or_adds_dismax_keeps_the_best(r):
    a, b = wq.Term("text", "窓口"), wq.Term("text", "委託")
    sa, sb = r.score(a), r.score(b)
    assert np.allclose(r.score(wq.Or([a, b])), sa + sb)
    assert np.allclose(r.score(wq.DisjunctionMax([a, b])), np.maximum(sa, sb))
    assert np.allclose(r.score(wq.Or([a, b], boost=0.5)), 0.5 * (sa + sb))


def test_a_phrase_scores_its_words_where_it_occurs(r):
    phrase = wq.Phrase("text", ["指定", "管理", "料"])
    words = sum(r.score(wq.Term("text", w)) for w in phrase.words)
    scores = r.score(phrase)
    inside = r.docs(phrase)
    assert len(inside) and np.allclose(scores[inside], words[inside])
    assert np.count_nonzero(scores) == len(inside)


def test_term_weights_by_part_of_speech():
    assert term_weight(("動詞", "一般")) == 0.3
    assert term_weight(("名詞", "普通名詞", "一般")) == 1.0


def test_cache_is_bounded(kb_index, monkeypatch):
    monkeypatch.setattr(ranking, "MAX_CACHED_POSTINGS", 5)
    fresh = Ranker(kb_index.searcher())
    for term in ("窓口", "委託", "掛川", "図書館", "市民"):
        fresh.postings("text", term)
    cache = fresh._cache
    assert cache.postings_size <= 5 or len(cache.postings) == 1


def test_block_decoding_matches_whoosh_with_deletions_and_segments(tmp_path, corpus_articles):
    """read_postings decodes blocks itself: it must agree with Whoosh's own matcher."""
    from kb.index import OpenIndex, build, update_articles

    build(corpus_articles[:20], tmp_path, procs=1, show_progress=False)
    # a second segment and deleted documents in the first
    changed = [dataclasses.replace(a, body=a.body + "追記。") for a in corpus_articles[:3]]
    update_articles(tmp_path, changed + corpus_articles[20:25], remove_ids=[corpus_articles[5].id])
    index = OpenIndex(tmp_path)
    reader = index.searcher().reader()
    assert len(reader.leaf_readers()) > 1 and reader.has_deletions()
    checked = 0
    for field in ("title", "body", "grams", "keywords"):
        for term in list(reader.lexicon(field))[::7]:
            m = reader.postings(field, term)
            ids, weights = [], []
            while m.is_active():
                ids.append(m.id())
                weights.append(m.weight())
                m.next()
            got_ids, got_weights = ranking.read_postings(reader, field, term)
            assert list(got_ids) == ids and list(got_weights) == weights, (field, term)
            checked += 1
    assert checked > 100
    index.close()


def test_threads_share_one_cache_per_commit(kb_index):
    import threading

    rankers = []
    thread = threading.Thread(target=lambda: rankers.append(ranker(kb_index)))
    thread.start()
    thread.join()
    mine = ranker(kb_index)
    assert rankers[0] is not mine  # each thread has its own searcher...
    assert rankers[0]._cache is mine._cache  # ...and they share what they read
    first = mine.postings("body", "窓口")
    assert rankers[0].postings("body", "窓口") is first
