"""kb.facets: counting facet values over matched documents without scoring them."""
from __future__ import annotations

from collections import Counter

from kb.facets import facet_counts, facet_table
from kb.ranking import ranker


def test_the_table_holds_every_articles_values(kb_index, corpus_articles):
    r = ranker(kb_index)
    table = facet_table(r.searcher)
    assert facet_table(r.searcher) is table  # cached for the commit
    by_id = {a.id: a for a in corpus_articles}
    for docnum in range(r.size):
        article = by_id[r.searcher.stored_fields(docnum)["id"]]
        assert table["prefecture"][docnum] == [article.prefecture]
        assert sorted(table["category"][docnum]) == sorted(article.categories)
        assert len(table["year"][docnum]) == 1


def test_counts_over_some_documents(kb_index, corpus_articles):
    r = ranker(kb_index)
    docs = list(range(r.size))[:4]
    counts = facet_counts(r.searcher, docs, {"prefecture": ["静岡県"]})
    ids = {r.searcher.stored_fields(d)["id"] for d in docs}
    expected = Counter(a.prefecture for a in corpus_articles if a.id in ids)
    assert {f["value"]: f["count"] for f in counts["prefecture"]} == expected
    assert all(f["selected"] == (f["value"] == "静岡県") for f in counts["prefecture"])
    assert facet_counts(r.searcher, [], {}) == {"prefecture": [], "category": [], "year": []}
