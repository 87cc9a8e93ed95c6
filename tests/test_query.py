"""kb.query: what a typed query means (words, alternatives, questions) and its Whoosh queries."""
from __future__ import annotations

import pytest

from kb.query import plan_query, split_terms, to_whoosh
from kb.synonyms import parse as parse_synonyms

SYNONYMS = parse_synonyms("指定管理, 指定管理者制度\nBPO, 業務委託\n")


@pytest.mark.parametrize("query, question", [
    ("窓口 委託", False),
    ("掛川城", False),
    ("指定管理はどこ", True),  # a question word
    ("白井市の待ち時間は?", True),  # a question mark
    ("ふるさと納税の運営を地元の地域商社に一括委託", True),  # a sentence of many words
    ("窓口業務の委託", False),  # particles but few words: still every word
    ("窓口は混むのか", True),  # a sentence ending in か
    ("自然 豊か", False),  # a word ending in か is not a question
])
def test_when_a_query_reads_as_a_question(query, question):
    assert plan_query(query).question is question


def test_a_question_word_alone_is_still_searched():
    plan = plan_query("どこ")
    assert plan.ignored == [] and plan.clauses[0].terms == ["どこ"]


def test_a_multi_word_synonym_is_a_phrase():
    plan = plan_query("指定管理", synonyms=SYNONYMS)
    (unit,) = plan.clauses[0].units
    assert [(a.via, a.text, a.phrase) for a in unit.alts] == [
        ("word", "指定管理", False), ("synonym", "指定管理者制度", True)]


def test_readings_need_the_index():
    plan = plan_query("かけがわ")  # planning alone knows no readings
    assert all(a.via == "word" for u in plan.units() for a in u.alts)


def test_words_group_morphs_and_carry_their_alternatives():
    plan = plan_query("BPO 令和5年度の指定管理", synonyms=SYNONYMS)
    words = [(u.text, [a.via for a in u.alts]) for u in plan.units()]
    assert words == [("BPO", ["word", "synonym"]), ("令和5年度", ["word", "year"]),
                     ("指定管理", ["word", "synonym"])]
    assert {"bpo", "業務委託", "2023", "管理者"} <= plan.match_terms()


def test_modes_that_do_not_apply_are_none():
    plan = plan_query("窓口")
    assert to_whoosh(plan, "split") is None  # 窓口 does not split
    assert str(to_whoosh(plan, "chars")) == "grams:窓口"
    assert to_whoosh(plan_query("「窓口業務」"), "chars") is None  # a phrase stays a phrase
    with pytest.raises(ValueError):
        to_whoosh(plan, "fuzzy")


def test_split_terms_are_the_a_units():
    assert list(split_terms(plan_query("窓口業務委託"))) == ["窓口", "業務", "委託"]
    assert split_terms(plan_query("窓口")) == {}


def test_describe_lists_words_alternatives_and_question():
    described = plan_query("指定管理はどこ", synonyms=SYNONYMS).describe()
    assert described["question"] is True and described["ignored"] == ["どこ"]
    (word,) = described["clauses"][0]["words"]
    assert [a["via"] for a in word["alternatives"]] == ["word", "synonym"]
    assert " OR " in described["whoosh"] or "DisMax" in described["whoosh"]
