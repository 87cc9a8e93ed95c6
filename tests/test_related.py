"""Related articles: the model, its reasons and edge cases, the pages, the API and the CLI."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kb import related
from kb.analysis import analyze
from kb.cli import cli
from kb.corpus import Article
from kb.errors import ArticleNotFound, BadRequest, IndexIncompatible, TooLarge
from kb.index import build
from web import create_app

COPY_ID = "kakegawa-castle-copy"  # the same case filed twice
EMPTY_ID = "numbers-only"  # nothing but numbers and symbols: no content words


@pytest.fixture(scope="session")
def articles(corpus_articles):
    """The fixture corpus, one article filed twice, and one article without content words."""
    original = next(a for a in corpus_articles if a.id == "kakegawa-castle-shitei-kanri")
    copy = dataclasses.replace(original, id=COPY_ID, path=None)
    empty = Article(id=EMPTY_ID, title="2024", body="123、456。789！")
    return [*corpus_articles, copy, empty]


@pytest.fixture(scope="session")
def related_index(articles, tmp_path_factory):
    """An index with its related model, built the way `kb index` builds it."""
    path = tmp_path_factory.mktemp("related-index")
    build(articles, path, procs=1, show_progress=False, features=related.features,
          after_write=related.after_write)
    return path


@pytest.fixture(scope="session")
def model(related_index):
    return related.open_model(related_index)


@pytest.fixture(scope="session")
def lsa_model(articles):
    """The same corpus with LSA switched on (the real threshold needs 200 articles)."""
    docs = [related.extract(analyze(a.title), analyze(a.body)) for a in articles]
    settings_ = dataclasses.replace(related.DEFAULT_SETTINGS, lsa_min_articles=2, lsa_dims=4)
    return related.fit([a.id for a in articles], [a.title for a in articles], docs, settings_)


@pytest.fixture(scope="session")
def related_client(related_index):
    return create_app({"INDEX_DIR": str(related_index), "TESTING": True}).test_client()


def _contributions(m: related.RelatedModel, a: str, b: str) -> dict[int, float]:
    """Each shared term's share of the TF-IDF cosine of two stored articles."""
    prod = m.matrix[m.position[a]].multiply(m.matrix[m.position[b]]).tocsr()
    return {int(c): float(v) for c, v in zip(prod.indices, prod.data) if v > 0}


# --- the model ------------------------------------------------------------------------------


def test_build_stores_a_versioned_model_and_records_it_in_meta(related_index, articles):
    meta = json.loads((related_index / "meta.json").read_text(encoding="utf-8"))
    assert meta["related"]["model_version"] == related.MODEL_VERSION
    assert meta["related"]["articles"] == len(articles)
    gen = related_index / meta["generation"]
    assert (gen / related.INFO_FILE).is_file() and (gen / related.ARRAYS_FILE).is_file()
    with np.load(gen / related.ARRAYS_FILE, allow_pickle=False) as npz:
        assert all(npz[name].dtype != object for name in npz.files)


def test_a_build_without_the_features_hook_gives_the_same_model(articles, model, tmp_path):
    """after_write also accepts the raw (title morphs, body morphs) pairs."""
    build(articles, tmp_path, procs=1, show_progress=False, after_write=related.after_write)
    other = related.open_model(tmp_path)
    for a in articles:
        assert other.for_article(a.id) == model.for_article(a.id)


@pytest.mark.parametrize("fixture", ["model", "lsa_model"])
def test_an_article_is_never_its_own_neighbour(request, fixture, articles):
    m = request.getfixturevalue(fixture)
    for a in articles:
        found = m.for_article(a.id, related.MAX_LIMIT)
        assert a.id not in [r["id"] for r in found["related"] + found["duplicates"]]


def test_reasons_are_the_terms_contributing_most(model, articles):
    """Without LSA the score is the TF-IDF cosine: the sum of the shared terms' products."""
    checked = 0
    for a in articles:
        for r in model.for_article(a.id, related.MAX_LIMIT)["related"]:
            shares = _contributions(model, a.id, r["id"])
            assert r["score"] == pytest.approx(sum(shares.values()), abs=1e-3)
            best = sorted(shares, key=lambda c: (-shares[c], c))[:related.REASON_TERMS]
            assert r["terms"] == [model.display[c] for c in best]
            checked += 1
    assert checked > 5


def test_reasons_are_readable_words_of_both_articles(model, articles):
    def words(article_id):
        a = next(x for x in articles if x.id == article_id)
        return {model.display[model.column[m.text]] for m in analyze(a.title + "\n" + a.body)
                if m.text in model.column}

    found = model.for_article("hamamatsu-toshokan-shitei-kanri")
    assert found["related"][0]["id"] in {"gyomu-itaku-shitei-kanri-kaisetsu",
                                         "kakegawa-castle-shitei-kanri"}
    assert "指定" in found["related"][0]["terms"]
    for r in found["related"]:
        assert set(r["terms"]) <= words(found["id"]) & words(r["id"])
        assert all(t in found["title"] + r["title"] or not t.isascii() for t in r["terms"])


def test_lsa_score_blends_the_cosines_and_reasons_stay_shared_terms(lsa_model):
    m, a = lsa_model, "hamamatsu-toshokan-shitei-kanri"
    for r in m.for_article(a, 5)["related"]:
        i, j = m.position[a], m.position[r["id"]]
        lexical = sum(_contributions(m, a, r["id"]).values())
        latent = float(m.latent[i] @ m.latent[j])
        assert r["score"] == pytest.approx(0.5 * lexical + 0.5 * latent, abs=1e-3)
        assert set(r["terms"]) <= {m.display[c] for c in _contributions(m, a, r["id"])}


def test_query_vectors_match_the_fitted_rows(model, articles):
    """Free text goes through the same TF-IDF as the articles did at build time."""
    for a in articles:
        doc = related.extract(analyze(a.title), analyze(a.body))
        row = model.matrix[model.position[a.id]].toarray()
        assert np.allclose(model.vector(doc).toarray(), row, atol=1e-5)


def test_lsa_fold_in_of_an_article_equals_its_stored_latent_row(lsa_model, articles):
    m = lsa_model
    for a in articles[:4]:
        q = m.vector(related.extract(analyze(a.title), analyze(a.body))).toarray().ravel()
        folded = related._normalise((m.matrix @ q) @ m.fold)
        assert np.allclose(folded, m.latent[m.position[a.id]], atol=1e-4)


@pytest.mark.parametrize("fixture", ["model", "lsa_model"])
def test_free_text_equal_to_an_article_finds_it_first(request, fixture, articles):
    m = request.getfixturevalue(fixture)
    for a in articles:
        if a.id in (COPY_ID, EMPTY_ID, "kakegawa-castle-shitei-kanri"):
            continue  # two articles tie for the copy; the empty one has no terms
        for found in (m.for_text(a.body, title=a.title), m.for_text(a.body)):
            assert (found["duplicates"] + found["related"])[0]["id"] == a.id


def test_near_duplicates_are_flagged_not_suggested(model):
    for one, other in (("kakegawa-castle-shitei-kanri", COPY_ID),
                       (COPY_ID, "kakegawa-castle-shitei-kanri")):
        found = model.for_article(one, related.MAX_LIMIT)
        assert [d["id"] for d in found["duplicates"]] == [other]
        assert found["duplicates"][0]["score"] >= related.NEAR_DUPLICATE
        assert other not in [r["id"] for r in found["related"]]
    assert model.describe()["near_duplicate_articles"] == 2


def test_free_text_near_duplicates_come_first_and_apart(model, articles):
    original = next(a for a in articles if a.id == COPY_ID)
    found = model.for_text(original.body, title=original.title)
    assert {d["id"] for d in found["duplicates"]} == {COPY_ID, "kakegawa-castle-shitei-kanri"}
    assert not {COPY_ID, "kakegawa-castle-shitei-kanri"} & {r["id"] for r in found["related"]}


def test_exclude_leaves_an_article_out_of_free_text_results(model, articles):
    a = next(x for x in articles if x.id == "sapporo-hikkoshi-onestop")
    found = model.for_text(a.body, title=a.title, exclude=[a.id])
    assert a.id not in [r["id"] for r in found["related"] + found["duplicates"]]


def test_limit_caps_the_list(model):
    assert len(model.for_article("shiroi-madoguchi-itaku", 1)["related"]) == 1


# --- edge cases --------------------------------------------------------------------------


def test_article_without_content_words_has_no_neighbours_and_is_nobodys(model, articles):
    assert model.for_article(EMPTY_ID) == {"id": EMPTY_ID, "title": "2024", "related": [],
                                           "duplicates": []}
    for a in articles:
        assert EMPTY_ID not in [r["id"] for r in model.for_article(a.id, 20)["related"]]


def test_free_text_without_content_words(model):
    assert model.for_text("123、456。") == {"related": [], "duplicates": [], "known_terms": 0}
    assert model.for_text("まったく関係のない宇宙旅行")["known_terms"] == 0


def test_empty_corpus(tmp_path):
    m = related.fit([], [], [])
    assert len(m) == 0 and m.describe()["terms"] == 0
    assert related.after_write(tmp_path, [], []) == {"related": m.describe()}
    loaded = related.load(tmp_path)
    assert loaded.for_text("窓口業務の委託") == {"related": [], "duplicates": [], "known_terms": 0}
    with pytest.raises(ArticleNotFound):
        loaded.for_article("anything")


def test_one_article(tmp_path):
    a = Article(id="only", title="窓口業務の委託", body="市民課の窓口業務を民間事業者に委託した。")
    stats = build([a], tmp_path, procs=1, show_progress=False, features=related.features,
                  after_write=related.after_write)
    assert stats.extra["related"]["articles"] == 1
    m = related.open_model(tmp_path)
    assert m.for_article("only") == {"id": "only", "title": a.title, "related": [],
                                     "duplicates": []}
    found = m.for_text(a.body, title=a.title)
    assert (found["duplicates"] + found["related"])[0]["id"] == "only"


def test_two_identical_articles_are_duplicates_even_in_a_tiny_corpus():
    doc = related.extract(analyze("図書館"), analyze("図書館の指定管理者制度。"))
    m = related.fit(["a", "b"], ["図書館", "図書館"], [doc, doc])
    assert [d["id"] for d in m.for_article("a")["duplicates"]] == ["b"]
    assert m.for_article("a")["related"] == []


@pytest.mark.parametrize("text,error", [
    ("", BadRequest), ("  \n　", BadRequest), (None, BadRequest), (42, BadRequest),
    ("あ" * (related.MAX_TEXT_CHARS + 1), TooLarge),
])
def test_free_text_limits(model, text, error):
    with pytest.raises(error):
        model.for_text(text)


def test_longest_free_text_is_accepted(model):
    assert model.for_text("窓口" * (related.MAX_TEXT_CHARS // 2))["known_terms"] == 1


@pytest.mark.parametrize("limit", [0, related.MAX_LIMIT + 1, True, "3", 2.5])
def test_bad_limits(model, limit):
    with pytest.raises(BadRequest):
        model.for_article("shiroi-madoguchi-itaku", limit)
    with pytest.raises(BadRequest):
        model.for_text("窓口", limit)


def test_unknown_article(model):
    with pytest.raises(ArticleNotFound):
        model.for_article("no-such-article")


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_sorted_results_or_a_clear_error(model, text):
    try:
        found = model.for_text(text)
    except BadRequest:
        assert not text.strip()
        return
    scores = [r["score"] for r in found["related"]]
    assert scores == sorted(scores, reverse=True)
    assert all(s >= related.MIN_SCORE for s in scores)


# --- versions -------------------------------------------------------------------------------


def _copy_generation(related_index, tmp_path):
    import shutil

    meta = json.loads((related_index / "meta.json").read_text(encoding="utf-8"))
    gen = tmp_path / meta["generation"]
    shutil.copytree(related_index / meta["generation"], gen)
    return gen


@pytest.mark.parametrize("key,value", [("model_version", related.MODEL_VERSION + 1),
                                       ("analysis_version", -1)])
def test_a_model_of_another_version_refuses_to_load(related_index, tmp_path, key, value):
    gen = _copy_generation(related_index, tmp_path)
    info = json.loads((gen / related.INFO_FILE).read_text(encoding="utf-8"))
    info[key] = value
    (gen / related.INFO_FILE).write_text(json.dumps(info), encoding="utf-8")
    with pytest.raises(IndexIncompatible) as err:
        related.load(gen)
    assert "kb index" in err.value.hint


def test_missing_or_broken_model_says_how_to_rebuild(related_index, tmp_path):
    gen = _copy_generation(related_index, tmp_path)
    (gen / related.ARRAYS_FILE).write_bytes(b"not a zip")
    with pytest.raises(IndexIncompatible):
        related.load(gen)
    (gen / related.INFO_FILE).unlink()
    with pytest.raises(IndexIncompatible) as err:
        related.load(gen)
    assert "kb index" in err.value.hint


# --- web ------------------------------------------------------------------------------------


def assert_error(response, status, code):
    assert response.status_code == status
    body = response.get_json()
    assert body["ok"] is False and body["error"]["code"] == code and body["error"]["message"]


def test_api_related_article(related_client):
    r = related_client.get("/api/related/hamamatsu-toshokan-shitei-kanri?limit=2")
    assert r.status_code == 200
    data = r.get_json()
    assert data["ok"] is True and data["id"] == "hamamatsu-toshokan-shitei-kanri"
    assert len(data["related"]) == 2
    assert set(data["related"][0]) == {"id", "title", "score", "terms"}
    assert data["duplicates"] == []


@pytest.mark.parametrize("path,status,code", [
    ("/api/related/no-such-article", 404, "not_found"),
    ("/api/related/..%2Fetc", 404, "not_found"),
    ("/api/related/shiroi-madoguchi-itaku?limit=0", 400, "bad_request"),
    ("/api/related/shiroi-madoguchi-itaku?limit=many", 400, "bad_request"),
])
def test_api_related_article_errors(related_client, path, status, code):
    assert_error(related_client.get(path), status, code)


def test_api_related_text(related_client):
    r = related_client.post("/api/related", json={"text": "市立図書館の開館時間を夜まで延長", "limit": 3})
    data = r.get_json()
    assert r.status_code == 200 and data["ok"] is True
    assert data["related"][0]["id"] == "hamamatsu-toshokan-shitei-kanri"
    assert "図書館" in data["related"][0]["terms"]


@pytest.mark.parametrize("kwargs,status,code", [
    ({"json": {"text": ""}}, 400, "bad_request"),
    ({"json": {"text": "   "}}, 400, "bad_request"),
    ({"json": {}}, 400, "bad_request"),
    ({"json": {"text": ["窓口"]}}, 400, "bad_request"),
    ({"json": ["窓口"]}, 400, "bad_request"),
    ({"json": {"text": "窓口", "limit": 0}}, 400, "bad_request"),
    ({"data": "text=窓口", "content_type": "application/x-www-form-urlencoded"}, 400,
     "bad_request"),
    ({"data": "{not json", "content_type": "application/json"}, 400, "bad_request"),
    ({"json": {"text": "窓" * (related.MAX_TEXT_CHARS + 1)}}, 413, "too_large"),
])
def test_api_related_text_errors(related_client, kwargs, status, code):
    assert_error(related_client.post("/api/related", **kwargs), status, code)


def test_api_related_body_over_the_request_limit(related_index):
    client = create_app({"INDEX_DIR": str(related_index), "TESTING": True,
                         "MAX_CONTENT_LENGTH": 1000}).test_client()
    r = client.post("/api/related", json={"text": "窓口" * 1000})
    assert r.status_code == 413 and r.get_json()["ok"] is False


def test_article_page_shows_related_cases_with_reasons(related_client):
    r = related_client.get("/articles/hamamatsu-toshokan-shitei-kanri")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "関連事例" in html and "共通する語" in html
    assert 'href="/articles/gyomu-itaku-shitei-kanri-kaisetsu"' in html


def test_article_page_flags_duplicates(related_client):
    html = related_client.get(f"/articles/{COPY_ID}").get_data(as_text=True)
    assert "ほぼ同じ内容の記事" in html
    assert 'href="/articles/kakegawa-castle-shitei-kanri"' in html


def test_related_page_form_and_results_are_escaped(related_client):
    assert "文章から関連事例を探す" in related_client.get("/related").get_data(as_text=True)
    r = related_client.post("/related", data={"text": "<script>alert(1)</script>市立図書館の開館時間"})
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    assert 'href="/articles/hamamatsu-toshokan-shitei-kanri"' in html


@pytest.mark.parametrize("text,status", [("", 400), ("窓" * (related.MAX_TEXT_CHARS + 1), 413)])
def test_related_page_errors_keep_the_form(related_client, text, status):
    r = related_client.post("/related", data={"text": text})
    assert r.status_code == status
    assert "<textarea" in r.get_data(as_text=True)


def test_index_without_a_model(tmp_path):
    """An index built before the model existed: pages still work, the API says rebuild."""
    build([Article(id="a", title="窓口", body="窓口業務の委託。")], tmp_path, procs=1,
          show_progress=False)
    client = create_app({"INDEX_DIR": str(tmp_path), "TESTING": True}).test_client()
    page = client.get("/articles/a")
    assert page.status_code == 200 and "索引を作り直してください" in page.get_data(as_text=True)
    assert_error(client.get("/api/related/a"), 503, "index_incompatible")


# --- CLI ------------------------------------------------------------------------------------


def test_cli_index_builds_the_model(runner, corpus_dir, tmp_path):
    result = runner.invoke(cli, ["index", str(corpus_dir), "--index", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert related.open_model(tmp_path).describe()["articles"] >= 9


def test_cli_related_article(runner, related_index):
    args = ["related", "hamamatsu-toshokan-shitei-kanri", "--index", str(related_index)]
    text = runner.invoke(cli, args)
    assert text.exit_code == 0 and "共通する語" in text.output
    data = json.loads(runner.invoke(cli, [*args, "--json", "--limit", "2"]).output)
    assert data["ok"] is True and len(data["related"]) == 2


def test_cli_related_text(runner, related_index):
    result = runner.invoke(cli, ["related", "--text", "市立図書館の開館時間を夜まで延長", "--json",
                                 "--index", str(related_index)])
    assert json.loads(result.output)["related"][0]["id"] == "hamamatsu-toshokan-shitei-kanri"
    stdin = runner.invoke(cli, ["related", "--text", "-", "--index", str(related_index)],
                          input="市立図書館の開館時間を夜まで延長")
    assert "hamamatsu-toshokan-shitei-kanri" in stdin.output


def test_cli_related_batch_contract(runner, related_index, tmp_path):
    lines = ['{"id": "hamamatsu-toshokan-shitei-kanri"}', '{"id": "no-such-article"}',
             "", "{broken", '{"q": "x"}', f'{{"id": "{EMPTY_ID}"}}']
    batch = tmp_path / "ids.jsonl"
    batch.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = runner.invoke(cli, ["related", "--batch", str(batch), "--limit", "3",
                                 "--index", str(related_index)])
    assert result.exit_code == 0, result.output
    out = [json.loads(x) for x in result.output.splitlines()]
    assert len(out) == 5  # one line per non-empty input line, in order
    assert set(out[0]) == {"id", "related"} and len(out[0]["related"]) == 3
    assert all(set(r) == {"id", "score", "terms"} for r in out[0]["related"])
    assert out[1]["id"] == "no-such-article" and out[1]["error"]["code"] == "not_found"
    assert out[2]["error"]["code"] == "bad_request" and out[3]["error"]["code"] == "bad_request"
    assert out[4] == {"id": EMPTY_ID, "related": []}


@pytest.mark.parametrize("args", [[], ["x", "--text", "y"], ["--text", ""]])
def test_cli_related_usage_errors(runner, related_index, args):
    result = runner.invoke(cli, ["related", *args, "--index", str(related_index)])
    assert result.exit_code == 1 and result.output.startswith("Error: ")


def test_cli_related_without_a_model_gives_a_hint(runner, tmp_path):
    build([Article(id="a", title="窓口", body="窓口業務の委託。")], tmp_path, procs=1,
          show_progress=False)
    result = runner.invoke(cli, ["related", "a", "--index", str(tmp_path)])
    assert result.exit_code == 1 and "kb index" in result.output
