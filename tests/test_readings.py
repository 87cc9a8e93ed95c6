"""kb.readings: proper nouns carry their readings into the index, so kana finds them."""
from __future__ import annotations

from kb.analysis import analyze
from kb.ranking import ranker
from kb.readings import all_readings, reading_terms, reading_tokens


def test_tokens_are_the_readings_of_proper_nouns_with_kanji():
    tokens = reading_tokens(analyze("掛川市の掛川城とコールセンターを見学した。"))
    assert "カケガワ:掛川" in tokens
    assert all(":" in t for t in tokens)
    assert not any("コールセンター" in t or "見学" in t for t in tokens)  # not proper nouns


def test_tokens_are_distinct():
    tokens = reading_tokens(analyze("掛川、掛川、掛川"))
    assert tokens.count("カケガワ:掛川") == 1


def test_reading_terms_from_the_index(kb_index):
    searcher = ranker(kb_index).searcher
    assert reading_terms(searcher, "かけがわ") == ["掛川"]
    assert reading_terms(searcher, "カケガワ") == ["掛川"]
    assert reading_terms(searcher, "うちゅう") == []
    assert reading_terms(searcher, "掛川") == []  # not kana: nothing to look up
    assert "掛川" in all_readings(searcher)["カケガワ"]
