"""kb.suggest: もしかして from the index's own bigrams and readings."""
from __future__ import annotations

import pytest

from kb.ranking import ranker
from kb.suggest import _distance_one, correct_word, gram_vocabulary, one_edit


def test_one_edit_keeps_only_strings_the_index_could_hold():
    grams = {"指定": 1, "定管": 1, "管理": 1, "理者": 1}
    after = {"指": {"定"}, "定": {"管"}, "管": {"理"}, "理": {"者"}}
    before = {"定": {"指"}, "管": {"定"}, "理": {"管"}, "者": {"理"}}
    out = one_edit("指定管里", grams, after, before)
    assert "指定管理" in out
    assert all(len(w) >= 2 for w in out) and "指定管里" not in out


@pytest.mark.parametrize("a, b, near", [
    ("カケガワ", "カケカワ", True), ("カケガワ", "カケガワシ", True), ("カケガワ", "ケカガワ", True),
    ("カケガワ", "カケガワ", False), ("カケガワ", "ハママツ", False), ("カケ", "カケガワ", False),
])
def test_distance_one(a, b, near):
    assert _distance_one(a, b) is near


def test_corrections_from_the_fixture_index(kb_index):
    r = ranker(kb_index)
    grams, after, before = gram_vocabulary(r.searcher)
    assert grams["管理"] >= 3 and "理" in after["管"]
    assert correct_word(r, "指定管里", 0) == "指定管理"
    assert correct_word(r, "ｺﾝﾋﾞ", 0) == "コンビニ"  # width folded first
    assert correct_word(r, "かけかわ", 0) == "掛川"  # through the readings
    assert correct_word(r, "掛川城", 1) is None  # found already, nothing finds three times more
    assert correct_word(r, "窓", 0) is None  # too short to guess
    assert correct_word(r, "あいうえおかきくけこさしすせそ", 0) is None  # a sentence, not a word
