"""Suggestions as you type (kb/autocomplete.py) and /api/suggest."""
from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kb import autocomplete


@pytest.fixture(scope="module")
def data(kb_index):
    return autocomplete.data_for(kb_index)


def labels(found):
    return [s["label"] for s in found]


@pytest.mark.parametrize("typed,expected", [
    ("かけ", "掛川市"),          # kana finds kanji by reading
    ("カケガワ", "掛川市"),
    ("しろい", "白井市"),
    ("掛川", "掛川市"),          # a prefix of a place name
    ("しずおか", "静岡県"),
    ("コール", "コールセンター"),  # a category
    ("指定管理", "指定管理者制度"),  # a tag
    ("窓口", "窓口"),            # a frequent index word
    ("ｃｏｎ", None),             # nothing, and nothing breaks
])
def test_suggestions_complete_the_word(data, typed, expected):
    found = autocomplete.suggest(data, typed)
    if expected is None:
        assert all(s["kind"] == "title" or s["label"].lower().startswith("con") for s in found)
    else:
        assert expected in labels(found), labels(found)


def test_titles_are_suggested_with_their_article(data):
    found = autocomplete.suggest(data, "掛川城")
    titles = [s for s in found if s["kind"] == "title"]
    assert titles and titles[0]["id"] == "kakegawa-castle-shitei-kanri"
    assert "掛川城" in titles[0]["label"]


def test_only_the_last_word_is_completed(data):
    found = autocomplete.suggest(data, "窓口 かけ")
    word = next(s for s in found if s["label"] == "掛川市")
    assert word["text"] == "窓口 掛川市"
    assert autocomplete.suggest(data, "窓口 ") == []  # a finished word: nothing to complete


def test_exact_word_first_and_limit(data):
    found = autocomplete.suggest(data, "窓口", limit=3)
    assert len(found) <= 3
    assert found[0]["label"] == "窓口"


def test_no_verb_forms_or_particles(data):
    for typed in ("か", "す", "な", "あ"):
        for s in autocomplete.suggest(data, typed, limit=20):
            assert s["kind"] == "title" or len(s["label"]) >= 2, s


@pytest.mark.parametrize("typed", ["", "   ", "-", '"', "「", "\x00", "a" * 5000])
def test_odd_input_gives_nothing_or_something(data, typed):
    assert isinstance(autocomplete.suggest(data, typed), list)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=30))
def test_any_text_never_raises(data, text):
    for s in autocomplete.suggest(data, text):
        assert s["label"] and s["kind"] in autocomplete.KIND_LABELS


def test_data_is_built_once_per_index_state(kb_index):
    assert autocomplete.data_for(kb_index) is autocomplete.data_for(kb_index)


def test_split_last_word():
    assert autocomplete.split_last_word("窓口 委託") == ("窓口 ", "委託")
    assert autocomplete.split_last_word("窓口\u3000委") == ("窓口\u3000", "委")
    assert autocomplete.split_last_word("窓口 ") == ("窓口", "")


def test_lookup_is_fast(data):
    started = time.perf_counter()
    for typed in ("か", "かけ", "窓口", "し", "コール", "BPO", "指定") * 10:
        autocomplete.suggest(data, typed)
    assert (time.perf_counter() - started) / 70 < 0.020


# --- /api/suggest -----------------------------------------------------------------------


def test_api_suggest_shape(client):
    client.get("/api/suggest", query_string={"q": "窓"})  # the first call builds the tables
    r = client.get("/api/suggest", query_string={"q": "かけ"})
    assert r.status_code == 200
    body = r.get_json()
    assert body["ok"] is True and "掛川市" in labels(body["suggestions"])
    assert body["took_ms"] < 20
    for s in body["suggestions"]:
        assert {"text", "label", "kind", "kind_label"} <= set(s)
        if s["kind"] == "title":
            assert s["url"] == f"/articles/{s['id']}"


def test_api_suggest_empty_and_errors(client):
    body = client.get("/api/suggest").get_json()
    assert body["ok"] is True and body["suggestions"] == []
    for params in ({"q": "窓口", "limit": "0"}, {"q": "窓口", "limit": "x"},
                   {"q": "あ" * 1001}):
        r = client.get("/api/suggest", query_string=params)
        assert r.status_code == 400 and r.get_json()["ok"] is False
