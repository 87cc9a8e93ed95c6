"""kb.search over the fixture index: what people type, what they get back."""
from __future__ import annotations

import html
import os
import re
import time
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kb.corpus import Article
from kb.errors import BadQuery
from kb.index import build, OpenIndex
from kb.search import (MAX_QUERY_CHARS, matched_label, plan_query, prune, relaxed_message, search,
                       to_whoosh)
from kb.ranking import ranker
from kb.synonyms import parse as parse_synonyms
from kb.years import year_label

AKITA = "akita-shimin-call-center"
GYOMU = "gyomu-itaku-shitei-kanri-kaisetsu"
HAMAMATSU = "hamamatsu-toshokan-shitei-kanri"
KAKEGAWA = "kakegawa-castle-shitei-kanri"
MINOBU = "minobu-furusato-nozei"
SAKAI = "sakai-kyufukin-jimu"
SAPPORO = "sapporo-hikkoshi-onestop"
SHIROI = "shiroi-madoguchi-itaku"
TSUKUBA = "tsukuba-conveni-nouzei"
FY2023 = {AKITA, KAKEGAWA, MINOBU}

SYNTAX = ['"', "(", ")", ":", "*", "?", "-", "AND", "OR", "NOT", "^", "~", "[", "]"]


def ids(result):
    return {h["id"] for h in result["hits"]}


def found(kb_index, q, **kwargs):
    return ids(search(kb_index, q, per_page=100, **kwargs))


# --- what a query finds --------------------------------------------------------------


@pytest.mark.parametrize("query, expected", [
    ("BPO", {AKITA, SHIROI}),
    ("ＢＰＯ", {AKITA, SHIROI}),  # full-width in shiroi, half-width in akita
    ("bpo", {AKITA, SHIROI}),
    ("引っ越し", {SAPPORO}),  # the article spells it 引越し
    ("引越し", {SAPPORO}),
    ("申し込み", {SAPPORO}),  # the article has 申込書
    ("掛川市", {KAKEGAWA}),
    ("掛川城", {KAKEGAWA}),
    ("指定管理料", {KAKEGAWA}),
    ("管理料", {KAKEGAWA}),  # a part of a compound finds the compound
    ("指定管理者", {GYOMU, HAMAMATSU, KAKEGAWA}),
    ("図書館", {GYOMU, HAMAMATSU}),
    ("コールセンター", {AKITA}),
    ("窓口業務委託", {SHIROI}),
    ("窓口 委託", {SHIROI, SAPPORO}),
    ("窓口　委託", {SHIROI, SAPPORO}),  # full-width space separates words too
    ("問い合わせ", {AKITA, MINOBU}),
    ("問合せ", {AKITA, MINOBU}),
    ("給付金", {SAKAI}),
    ("コンビニ納税", {TSUKUBA}),
    # era and Gregorian years find each other: kakegawa writes 令和5年度, akita 2023年度
    ("令和5年度", {KAKEGAWA, AKITA}),
    ("2023年度", {AKITA, KAKEGAWA}),
    ("掛川城 OR コールセンター", {KAKEGAWA, AKITA}),
    ("宇宙開発", set()),
    pytest.param("ふるさと納税", {MINOBU}),
])
def test_query_finds(kb_index, query, expected):
    assert found(kb_index, query) == expected


def test_title_match_ranks_first(kb_index):
    assert search(kb_index, "掛川城")["hits"][0]["id"] == KAKEGAWA
    assert search(kb_index, "指定管理者制度 図書館")["hits"][0]["id"] == HAMAMATSU


def test_result_shape(kb_index):
    result = search(kb_index, "窓口")
    assert set(result) == {"query", "total", "page", "per_page", "pages", "sort", "filters",
                           "relaxed", "question", "ignored", "expansions", "suggestions",
                           "hits", "facets", "took_ms"}
    assert result["question"] is False and result["ignored"] == []
    assert result["expansions"] == [] and result["suggestions"] == []
    assert result["query"] == "窓口" and result["total"] == 2 and result["relaxed"] is None
    hit = result["hits"][0]
    assert set(hit) == {"id", "title", "score", "snippet", "snippet_html", "date", "year",
                        "prefecture", "municipality", "categories", "tags", "url"}
    (shiroi,) = [h for h in result["hits"] if h["id"] == SHIROI]
    assert shiroi["date"] == "2022-03-20" and shiroi["year"] == 2021
    assert shiroi["prefecture"] == "千葉県" and shiroi["municipality"] == "白井市"
    assert shiroi["categories"] == ["窓口業務"]
    assert shiroi["tags"] == ["窓口業務委託", "住民票", "偽装請負"]
    assert shiroi["score"] > 0


def test_hits_without_snippets(kb_index):
    hits = search(kb_index, "窓口", snippets=False)["hits"]
    assert hits and all(set(h) == {"id", "title", "score"} for h in hits)


# --- phrases -------------------------------------------------------------------------


@pytest.mark.parametrize("query", ['"指定管理料"', "「指定管理料」", "『指定管理料』", "“指定管理料”"])
def test_quoted_phrase(kb_index, query):
    assert found(kb_index, query) == {KAKEGAWA}
    (clause,) = plan_query(query).clauses
    assert clause.phrase and clause.text == "指定管理料"


def test_phrase_keeps_word_order(kb_index):
    assert found(kb_index, "発送 返礼品") == {MINOBU}
    assert found(kb_index, "「返礼品の発送」") == {MINOBU}
    assert found(kb_index, "「発送の返礼品」") == set()


def test_phrase_over_a_compound_split_into_a_units(kb_index):
    assert found(kb_index, "「窓口業務委託」") == {SHIROI}
    assert found(kb_index, "「指定管理者に支払う」") == {KAKEGAWA}


def test_phrase_with_furusato_nozei(kb_index):
    assert found(kb_index, "「ふるさと納税の返礼品」") == {MINOBU}


def test_unpaired_quote_is_just_a_character(kb_index):
    assert found(kb_index, '"指定管理料') == {KAKEGAWA}
    assert found(kb_index, "「指定管理料") == {KAKEGAWA}


# --- exclusion -----------------------------------------------------------------------


@pytest.mark.parametrize("query, expected", [
    ("指定管理 -図書館", {KAKEGAWA}),
    ("指定管理 －図書館", {KAKEGAWA}),  # full-width minus
    ("-秋田 コールセンター", set()),
    ("窓口 -札幌", {SHIROI}),
    ('窓口 -"窓口業務委託"', {SAPPORO}),
])
def test_minus_excludes(kb_index, query, expected):
    assert found(kb_index, query) == expected


def test_exclusion_only_is_not_a_query():
    with pytest.raises(BadQuery):
        plan_query("-図書館")


def test_a_minus_inside_a_word_is_not_an_exclusion():
    plan = plan_query("ワン-ストップ")
    assert plan.excluded == [] and plan.clauses


# --- filters -------------------------------------------------------------------------


@pytest.mark.parametrize("query, expected", [
    ("prefecture:静岡県", {HAMAMATSU, KAKEGAWA}),
    ("pref:静岡県", {HAMAMATSU, KAKEGAWA}),
    ("都道府県:静岡県", {HAMAMATSU, KAKEGAWA}),
    ("prefecture:静岡県 prefecture:秋田県", {HAMAMATSU, KAKEGAWA, AKITA}),  # OR within
    ("category:窓口業務", {SHIROI, SAPPORO}),
    ("cat:窓口業務", {SHIROI, SAPPORO}),
    ("カテゴリ：窓口業務", {SHIROI, SAPPORO}),  # full-width colon
    ("category:学校・図書館", {HAMAMATSU}),
    ("year:2023", FY2023),
    ("year:2023年度", FY2023),
    ("year:令和5年度", FY2023),
    ("year:R5", FY2023),
    ("year:FY2023", FY2023),
    ("年度:令和5年度", FY2023),
    ("YEAR:2023", FY2023),
    ("year:2021", {SHIROI, TSUKUBA}),  # 2022-03-20 is still fiscal 2021
    ("year:2022", set()),
    ("year:令和元年度", {HAMAMATSU}),
    ("指定管理 prefecture:静岡県 year:2023", {KAKEGAWA}),  # AND across
    ("委託 year:2021", {SHIROI, TSUKUBA}),
])
def test_filters_in_the_query(kb_index, query, expected):
    assert found(kb_index, query) == expected


@pytest.mark.parametrize("filters, expected", [
    ({"year": ["2023"]}, FY2023 - {KAKEGAWA}),  # kakegawa does not mention 委託
    ({"year": ["2023年度"]}, FY2023 - {KAKEGAWA}),
    ({"year": ["令和5年度"]}, FY2023 - {KAKEGAWA}),
    ({"year": ["2021", "2020"]}, {SHIROI, TSUKUBA, SAKAI}),
    ({"prefecture": ["千葉県"]}, {SHIROI}),
    ({"category": ["コールセンター"]}, {AKITA}),
    ({"年度": ["令和5年度"], "カテゴリ": ["ふるさと納税"]}, {MINOBU}),
    ({"year": ["", "  "]}, {AKITA, GYOMU, MINOBU, SAKAI, SAPPORO, SHIROI, TSUKUBA}),
])
def test_filters_argument(kb_index, filters, expected):
    result = search(kb_index, "委託", filters=filters, per_page=100)
    assert ids(result) == expected


def test_filters_argument_and_query_filters_combine(kb_index):
    result = search(kb_index, "指定管理 year:2023", filters={"prefecture": ["静岡県"]})
    assert ids(result) == {KAKEGAWA}
    assert result["filters"] == {"prefecture": ["静岡県"], "year": [2023]}


def test_filter_only_query_lists_everything_in_the_filter(kb_index):
    result = search(kb_index, "", filters={"prefecture": ["静岡県"]}, per_page=100)
    assert ids(result) == {HAMAMATSU, KAKEGAWA}


@pytest.mark.parametrize("filters", [{"city": ["掛川市"]}, {"year": ["来年"]}, {"year": ["令和"]}])
def test_bad_filters_argument_is_bad_query(kb_index, filters):
    with pytest.raises(BadQuery):
        search(kb_index, "委託", filters=filters)


@pytest.mark.parametrize("query", ["year:abc", "year:20230", "年度:昔"])
def test_unreadable_year_in_the_query_is_bad_query(kb_index, query):
    with pytest.raises(BadQuery, match="年度"):
        search(kb_index, query)


def test_unknown_filter_name_is_searched_as_words(kb_index):
    plan = plan_query("city:掛川市")
    assert plan.filters == {} and plan.clauses


# --- AND, then OR --------------------------------------------------------------------


def test_and_falls_back_to_or_and_says_so(kb_index):
    result = search(kb_index, "掛川城 コールセンター")
    assert ids(result) == {KAKEGAWA, AKITA}
    assert result["relaxed"] == {
        "mode": "or",
        "message": "「掛川城 コールセンター」の一致がないため、一部の語で検索しています。",
    }
    assert result["relaxed"]["message"] == relaxed_message(plan_query("掛川城 コールセンター"))


def test_no_fallback_when_every_word_matches(kb_index):
    assert search(kb_index, "窓口 委託")["relaxed"] is None


def test_no_fallback_note_when_nothing_matches_at_all(kb_index):
    result = search(kb_index, "宇宙 開発")
    assert result["total"] == 0 and result["hits"] == [] and result["relaxed"] is None


# --- ? and * are ordinary characters -----------------------------------------------------


@pytest.mark.parametrize("query", ["白井市の待ち時間は?", "白井市の待ち時間は？", "白井市の待ち時間は*"])
def test_question_mark_does_not_turn_a_question_into_a_wildcard(kb_index, query):
    result = search(kb_index, query)
    assert result["hits"][0]["id"] == SHIROI


@pytest.mark.parametrize("plain, starred", [
    ("窓口", "窓口*"), ("窓口", "*窓口"), ("BPO", "BPO?"), ("掛川城", "掛川城?*"),
])
def test_wildcard_characters_change_nothing(kb_index, plain, starred):
    assert [h["id"] for h in search(kb_index, starred)["hits"]] == \
        [h["id"] for h in search(kb_index, plain)["hits"]]
    whoosh = plan_query(starred).describe()["whoosh"]
    assert "*" not in whoosh and "?" not in whoosh


def test_a_lone_prefix_with_a_star_is_not_a_prefix_search(kb_index):
    assert found(kb_index, "掛*") == set()  # a wildcard would have found 掛川...


# --- snippets ------------------------------------------------------------------------


def _check_marks(snippet_html, snippet_text):
    """Only balanced <mark> elements are markup; the rest is escaped text."""
    tags = re.findall(r"</?mark>", snippet_html)
    assert tags == ["<mark>", "</mark>"] * (len(tags) // 2)
    bare = re.sub(r"</?mark>", "", snippet_html)
    assert "<" not in bare and ">" not in bare
    assert html.unescape(bare) == snippet_text


@pytest.mark.parametrize("query, article_id, marked", [
    ("掛川城", KAKEGAWA, "掛川城"),
    ("引っ越し", SAPPORO, "引越し"),  # the text's own spelling is marked
    ("ＢＰＯ", AKITA, "BPO"),
    ("BPO", SHIROI, "ＢＰＯ"),
    ("コールセンター", AKITA, "コールセンター"),
])
def test_snippet_marks_the_matches(kb_index, query, article_id, marked):
    (hit,) = [h for h in search(kb_index, query)["hits"] if h["id"] == article_id]
    assert f"<mark>{marked}</mark>" in hit["snippet_html"]
    assert "<mark>" not in hit["snippet"] and marked in hit["snippet"]
    _check_marks(hit["snippet_html"], hit["snippet"])


def test_every_snippet_is_safe_and_short(kb_index):
    for q in ("委託", "窓口 委託", "指定管理者", "年度"):
        for hit in search(kb_index, q, per_page=100)["hits"]:
            _check_marks(hit["snippet_html"], hit["snippet"])
            assert len(hit["snippet"]) <= 162  # 160 characters and the two ellipses
            assert "\n" not in hit["snippet"]


HOSTILE_BODY = (
    "最初の文です。<script>alert(1)</script>窓口の</mark>委託を<b>始めた</b>。"
    "次の文には <mark>偽の印</mark> と & と \"引用\" があります。"
    "<img src=x onerror=alert(2)>掛川城の窓口。"
)


@pytest.fixture(scope="module")
def hostile_index(tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile")
    build([Article("hostile", "<script>alert(3)</script>窓口の記事", HOSTILE_BODY,
                   prefecture="千葉県", categories=["窓口業務"])],
          path, procs=1, show_progress=False)
    ix = OpenIndex(path)
    yield ix
    ix.close()


@pytest.mark.parametrize("query", ["窓口", "委託", "script", "alert", "mark", "偽の印", "b",
                                   "img", "onerror", "掛川城", "&", "引用"])
def test_snippet_html_escapes_markup_in_the_text(hostile_index, query):
    try:
        result = search(hostile_index, query)
    except BadQuery:
        return
    for hit in result["hits"]:
        snippet_html = hit["snippet_html"]
        assert "<script" not in snippet_html and "<img" not in snippet_html
        assert "<b>" not in snippet_html
        _check_marks(snippet_html, hit["snippet"])


def test_hostile_snippet_marks_words_next_to_markup(hostile_index):
    hit = search(hostile_index, "委託")["hits"][0]
    assert "<mark>委託</mark>" in hit["snippet_html"]
    assert "&lt;/mark&gt;" in hit["snippet_html"]


# --- facets --------------------------------------------------------------------------


def test_facet_counts_match_the_hits(kb_index, corpus_articles):
    by_id = {a.id: a for a in corpus_articles}
    result = search(kb_index, "委託", per_page=2)  # facets count every match, not one page
    everything = search(kb_index, "委託", per_page=100)
    matched = [by_id[h["id"]] for h in everything["hits"]]
    assert result["total"] == len(matched) == 7

    facets = result["facets"]
    assert {f["value"]: f["count"] for f in facets["prefecture"]} == \
        Counter(a.prefecture for a in matched)
    assert {f["value"]: f["count"] for f in facets["category"]} == \
        Counter(c for a in matched for c in a.categories)
    years = [f["value"] for f in facets["year"]]
    assert years == sorted(years, reverse=True)
    assert {f["value"]: f["count"] for f in facets["year"]} == \
        Counter(h["year"] for h in everything["hits"])
    for f in facets["year"]:
        assert f["label"] == year_label(f["value"])
    counts = [f["count"] for f in facets["prefecture"]]
    assert counts == sorted(counts, reverse=True)
    assert not any(f["selected"] for name in facets for f in facets[name])


def test_facets_mark_the_selected_filters(kb_index):
    facets = search(kb_index, "委託 year:令和5年度 category:コールセンター")["facets"]
    assert [(f["value"], f["selected"]) for f in facets["year"]] == [(2023, True)]
    assert [(f["value"], f["selected"]) for f in facets["category"]] == [("コールセンター", True)]
    assert facets["year"][0]["label"] == "2023年度（令和5年度）"


# --- paging and sorting --------------------------------------------------------------


def test_pages_split_the_same_ranking(kb_index):
    everything = [h["id"] for h in search(kb_index, "委託", per_page=100)["hits"]]
    pages = [search(kb_index, "委託", page=p, per_page=2) for p in (1, 2, 3, 4)]
    assert [h["id"] for page in pages for h in page["hits"]] == everything
    assert all(page["pages"] == 4 and page["total"] == 7 for page in pages)
    assert [len(page["hits"]) for page in pages] == [2, 2, 2, 1]
    beyond = search(kb_index, "委託", page=5, per_page=2)
    assert beyond["hits"] == [] and beyond["total"] == 7


def test_pages_is_at_least_one(kb_index):
    result = search(kb_index, "宇宙開発")
    assert result["pages"] == 1 and result["total"] == 0


@pytest.mark.parametrize("kwargs", [
    {"page": 0}, {"page": -1}, {"page": 1001}, {"page": "2"},
    {"per_page": 0}, {"per_page": 101}, {"per_page": 1000}, {"per_page": 2.5},
    {"sort": "newest"}, {"sort": ""},
])
def test_page_bounds_are_bad_query(kb_index, kwargs):
    with pytest.raises(BadQuery):
        search(kb_index, "委託", **kwargs)


def test_largest_page_and_per_page_are_allowed(kb_index):
    result = search(kb_index, "委託", page=1000, per_page=100)
    assert result["hits"] == [] and result["total"] == 7


def test_sort_by_date_newest_first(kb_index):
    by_date = search(kb_index, "委託", sort="date", per_page=100)
    dates = [h["date"] for h in by_date["hits"]]
    assert dates == sorted(dates, reverse=True)
    assert dates[0] == "2025-04-07"
    assert ids(by_date) == found(kb_index, "委託")
    assert by_date["sort"] == "date"


def test_sort_by_date_pages(kb_index):
    first = search(kb_index, "委託", sort="date", per_page=3)
    second = search(kb_index, "委託", sort="date", per_page=3, page=2)
    dates = [h["date"] for h in first["hits"] + second["hits"]]
    assert dates == sorted(dates, reverse=True) and len(dates) == 6


# --- bad queries ---------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "   ", "\u3000\u3000", None, "\x00", "、。", "AND", "NOT"])
def test_empty_query_is_bad_query(kb_index, query):
    with pytest.raises(BadQuery, match="検索語"):
        search(kb_index, query)


def test_too_long_query_is_bad_query(kb_index):
    with pytest.raises(BadQuery, match="長すぎます"):
        search(kb_index, "窓" * (MAX_QUERY_CHARS + 1))
    search(kb_index, "窓口 " * (MAX_QUERY_CHARS // 3))  # 999 characters are fine


def test_non_string_query_is_bad_query(kb_index):
    with pytest.raises(BadQuery):
        search(kb_index, 123)


def test_bad_query_carries_status_and_code():
    with pytest.raises(BadQuery) as exc:
        plan_query("")
    assert exc.value.status == 400 and exc.value.code == "bad_query" and exc.value.message


def _search_or_bad_query(kb_index, query):
    try:
        result = search(kb_index, query)
    except BadQuery:
        return None
    assert result["total"] >= 0
    return result


@pytest.mark.parametrize("query", SYNTAX + [
    " ".join(SYNTAX), "".join(SYNTAX), '"窓口', '窓口"', '""', "「」", "「", "」", "-", "--窓口",
    "-\"\"", "(窓口 OR 委託)", "窓口^2", "窓口~", "[窓口 TO 委託]", "title:窓口", "year:",
    "prefecture:", ":窓口", "窓口 AND 委託", "窓口 NOT 委託", "OR 窓口", "窓口 OR", "OR OR",
    "*:*", "?*?", "\\", "窓口\\", "'", "`", "{", "}", "!", "+窓口", "&&", "||", "/", "//",
])
def test_query_syntax_characters_never_raise_anything_but_bad_query(kb_index, query):
    _search_or_bad_query(kb_index, query)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(SYNTAX + ["窓口", "委託", "year:2023", "prefecture:静岡県",
                                          "「", "」", "-", " ", "\u3000", "ＢＰＯ"]),
                max_size=12).map("".join))
def test_combined_syntax_never_raises_anything_but_bad_query(kb_index, query):
    _search_or_bad_query(kb_index, query)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80))
def test_any_text_never_raises_anything_but_bad_query(kb_index, query):
    _search_or_bad_query(kb_index, query)


# --- the plan ------------------------------------------------------------------------


def test_plan_reads_every_part_of_the_syntax():
    plan = plan_query('"指定管理料" 窓口 -図書館 prefecture:静岡県 year:令和5年度')
    assert [(c.text, c.phrase) for c in plan.clauses] == [("指定管理料", True), ("窓口", False)]
    assert [c.text for c in plan.excluded] == ["図書館"]
    assert plan.filters == {"prefecture": ["静岡県"], "year": [2023]}


def test_plan_describe_has_the_whoosh_query():
    described = plan_query("掛川城 -図書館 year:2023").describe()
    assert described["clauses"][0]["text"] == "掛川城"
    assert described["excluded"] == [{"text": "図書館", "terms": ["図書館"]}]
    assert described["filters"] == {"year": [2023]}
    whoosh = described["whoosh"]
    assert isinstance(whoosh, str)
    # title and body are searched as one field (text), with a title bonus
    assert "text:掛川" in whoosh and "title:掛川^0.5" in whoosh and "text:城" in whoosh
    assert " AND " in whoosh
    assert "図書館" not in whoosh and "year" not in whoosh  # those are mask and filter


def test_plan_describe_of_a_phrase_and_a_filter_only_query():
    assert "text:\"指定 管理 料\"" in plan_query("「指定管理料」").describe()["whoosh"]
    assert plan_query("prefecture:静岡県").describe()["whoosh"] is None


def test_plan_match_terms_include_a_units():
    assert {"管理者", "管理", "者"} <= plan_query("管理者").match_terms()


def test_plan_normalises_before_analysing():
    assert plan_query("ＢＰＯ").clauses[0].terms == plan_query("BPO").clauses[0].terms == ["bpo"]


# --- natural-language questions ---------------------------------------------------------


def test_a_question_matches_any_word_ranked_and_drops_question_words(kb_index):
    result = search(kb_index, "掛川城の指定管理は誰が担っている？")
    assert result["question"] is True and result["ignored"] == ["誰"]
    assert result["relaxed"] is None  # a question is not expected to contain every word
    assert result["hits"][0]["id"] == KAKEGAWA
    assert result["total"] > 3  # any word matches; ranking puts the best first


# --- synonyms (query time) ---------------------------------------------------------------

SYNONYMS = parse_synonyms("""
# comments and blank lines are ignored
BPO, 業務委託、アウトソーシング
指定管理, 指定管理者制度
関東 => 千葉県, 茨城県
""")


def test_synonyms_find_the_other_words_of_the_group(kb_index):
    assert found(kb_index, "BPO") == {AKITA, SHIROI}  # without the list
    assert found(kb_index, "BPO", synonyms=SYNONYMS) == {AKITA, SHIROI, GYOMU}  # GYOMU: 業務委託
    # nothing says アウトソーシング: its group finds the articles
    assert found(kb_index, "アウトソーシング", synonyms=SYNONYMS) == {AKITA, SHIROI, GYOMU}


def test_synonyms_apply_however_the_word_is_spelt(kb_index):
    assert found(kb_index, "ＢＰＯ", synonyms=SYNONYMS) == found(kb_index, "bpo", synonyms=SYNONYMS)


def test_synonyms_are_shown_to_the_user(kb_index):
    result = search(kb_index, "BPO 窓口", synonyms=SYNONYMS)
    (expansion,) = result["expansions"]
    assert expansion["type"] == "synonym" and expansion["from"] == "BPO"
    assert expansion["to"] == ["業務委託", "アウトソーシング"]
    assert expansion["message"] == "「BPO」の同義語「業務委託」「アウトソーシング」も検索しています。"
    assert search(kb_index, "窓口", synonyms=SYNONYMS)["expansions"] == []


def test_one_way_synonyms(kb_index):
    # 関東 finds the articles of its prefectures (place names are keywords of an article)
    assert found(kb_index, "関東", synonyms=SYNONYMS) == {SHIROI, TSUKUBA}
    assert search(kb_index, "千葉県", synonyms=SYNONYMS)["expansions"] == []


def test_the_synonym_file_is_read_by_path_and_reread_when_it_changes(kb_index, tmp_path):
    path = tmp_path / "synonyms.txt"
    path.write_text("BPO, 業務委託\n", encoding="utf-8")
    assert GYOMU in found(kb_index, "BPO", synonyms=str(path))
    path.write_text("BPO, コールセンター\n", encoding="utf-8")
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert found(kb_index, "BPO", synonyms=str(path)) == {AKITA, SHIROI}
    assert found(kb_index, "BPO", synonyms=str(tmp_path / "missing.txt")) == {AKITA, SHIROI}


# --- era and fiscal years ------------------------------------------------------------


def test_era_and_gregorian_years_find_each_other(kb_index):
    era = search(kb_index, "令和5年度")
    assert era["expansions"][0]["to"] == ["2023年度"]
    assert ids(era) == ids(search(kb_index, "2023年度")) == {AKITA, KAKEGAWA}
    assert "令和5年度" in search(kb_index, "2023年度")["expansions"][0]["to"]
    assert ids(search(kb_index, "令和５年度")) == {AKITA, KAKEGAWA}  # full-width digits


def test_year_inside_a_longer_query(kb_index):
    assert found(kb_index, "2023年度 コールセンター") == {AKITA}


# --- readings of place names ---------------------------------------------------------


@pytest.mark.parametrize("query, expected, term", [
    ("かけがわ", {KAKEGAWA}, "掛川"), ("カケガワ", {KAKEGAWA}, "掛川"),
    ("はままつ", {HAMAMATSU}, "浜松"), ("しらい", {SHIROI}, "白井"),
])
def test_kana_finds_the_place_that_reads_so(kb_index, query, expected, term):
    result = search(kb_index, query)
    assert ids(result) == expected
    (expansion,) = result["expansions"]
    assert expansion["type"] == "reading" and term in expansion["to"]


# --- zero-result recovery -------------------------------------------------------------


def test_a_compound_is_split_into_its_parts(kb_index):
    result = search(kb_index, "受付時間")  # no article has the compound; two have both parts
    assert result["relaxed"] == {
        "mode": "split",
        "message": "「受付時間」の一致がないため、複合語を分けて（受付・時間）検索しています。"}
    assert ids(result) == {SHIROI, SAPPORO}


def test_then_any_part_of_the_compound(kb_index):
    result = search(kb_index, "相談窓口")
    assert result["relaxed"]["mode"] == "split_any"
    assert "（相談・窓口）の一部で" in result["relaxed"]["message"]
    assert ids(result) == {SHIROI, SAPPORO}


def test_then_the_characters_as_typed(kb_index):
    result = search(kb_index, "コンビ")  # not a word of any article, but inside コンビニ
    assert result["relaxed"] == {
        "mode": "chars",
        "message": "「コンビ」に一致する語がないため、文字の並びが一致する記事を表示しています。"}
    assert ids(result) == {TSUKUBA}
    assert "<mark>コンビ</mark>" in result["hits"][0]["snippet_html"]


def test_a_quoted_phrase_is_never_loosened(kb_index):
    result = search(kb_index, "「受付時間」")
    assert result["total"] == 0 and result["relaxed"] is None


# --- did you mean ---------------------------------------------------------------------


@pytest.mark.parametrize("query, suggestion", [
    ("指定管里", "指定管理"),  # a character replaced
    ("コンビ", "コンビニ"),  # a character missing
    ("かけかわ", "掛川"),  # a reading one sound off
    ("窓口 指定管里", "窓口 指定管理"),  # only the misspelt word changes
])
def test_did_you_mean(kb_index, query, suggestion):
    (suggested,) = search(kb_index, query)["suggestions"]
    assert suggested["query"] == suggestion
    assert suggested["message"] == f"もしかして: {suggestion}"


@pytest.mark.parametrize("query", ["窓口", "掛川城", "宇宙開発", "BPO", "どこ"])
def test_no_suggestion_for_words_that_are_found_or_unknown(kb_index, query):
    assert search(kb_index, query)["suggestions"] == []


# --- explain ---------------------------------------------------------------------------


def test_explain_says_which_word_matched_where(kb_index):
    result = search(kb_index, "掛川城 指定管理", explain=True, synonyms=SYNONYMS)
    hit = next(h for h in result["hits"] if h["id"] == KAKEGAWA)
    matched = {(m["term"], m["field"], m["via"]) for m in hit["matched"]}
    assert {("掛川", "title", "word"), ("城", "title", "word"), ("指定管理", "body", "word"),
            ("指定管理者制度", "keywords", "synonym")} <= matched  # one of its tags
    assert "matched" not in search(kb_index, "掛川城")["hits"][0]


def test_explain_of_readings_and_years(kb_index):
    (hit,) = search(kb_index, "かけがわ", explain=True)["hits"]
    assert {"term": "掛川", "field": "title", "via": "reading"} in hit["matched"]
    hit = next(h for h in search(kb_index, "令和5年度", explain=True)["hits"] if h["id"] == AKITA)
    assert {"term": "2023年度", "field": "body", "via": "year"} in hit["matched"]


def test_matched_label_is_compact():
    assert matched_label([
        {"term": "窓口", "field": "body", "via": "word"},
        {"term": "窓口", "field": "title", "via": "word"},
        {"term": "業務委託", "field": "title", "via": "synonym"},
    ]) == "窓口(本文・タイトル), 業務委託(タイトル・同義語)"


# --- ranking and speed ---------------------------------------------------------------


def test_scores_are_bm25_over_title_and_body_as_one_field(kb_index):
    hits = search(kb_index, "図書館", per_page=100)["hits"]
    assert [h["id"] for h in hits][0] == HAMAMATSU  # in its title
    assert hits[0]["score"] > hits[-1]["score"] > 0


def test_pruned_query_drops_terms_the_index_lacks(kb_index):
    q = to_whoosh(plan_query("掛川城 宇宙"), "or")
    pruned = str(prune(q, ranker(kb_index)))
    assert "宇宙" in str(q) and "宇宙" not in pruned and "text:掛川" in pruned
