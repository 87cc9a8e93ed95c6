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


# --- incremental writes: the overlay -----------------------------------------------------

LIBRARY = {"id": "nagoya-toshokan-shitei-kanri", "title": "名古屋市の図書館に指定管理者制度を導入",
           "body": "名古屋市は市立図書館の運営に指定管理者制度を導入した。開館時間を夜まで延長し、"
                   "指定管理者の民間事業者が図書館の窓口とイベントを担う。"}
FURUSATO = ("ふるさと納税の返礼品を見直し、寄附の受付を民間事業者に委託した。"
            "寄附金の使い道を公開し、ふるさと納税の寄附額が増えた。")


def _text_result(m: related.RelatedModel, article_id: str, title: str, body: str,
                 limit: int = related.MAX_LIMIT) -> dict:
    found = m.for_text(body, limit, title=title, exclude=[article_id])
    return {"related": found["related"], "duplicates": found["duplicates"]}


def _lists(found: dict) -> dict:
    return {"related": found["related"], "duplicates": found["duplicates"]}


def _everywhere(m: related.RelatedModel, ids) -> set[str]:
    """Every id shown as related or duplicate of any of ids."""
    shown = set()
    for i in ids:
        found = m.for_article(i, related.MAX_LIMIT)
        shown |= {r["id"] for r in found["related"] + found["duplicates"]}
    return shown


@pytest.mark.parametrize("fixture", ["model", "lsa_model"])
def test_a_folded_in_article_gets_exactly_the_neighbours_of_its_text(request, fixture):
    """Fold-in is the math of for_text: a written article's list equals that of its text."""
    base = request.getfixturevalue(fixture)
    changed = ("hamamatsu-toshokan-shitei-kanri", "浜松市の図書館", FURUSATO)
    added = (LIBRARY["id"], LIBRARY["title"], LIBRARY["body"])
    written = [(i, t, related.extract(analyze(t), analyze(b))) for i, t, b in (changed, added)]
    m = base.with_overlay(related.updated_overlay(base, written, ["sakai-kyufukin-jimu"]))
    for article_id, title, body in (changed, added):
        found = m.for_article(article_id, related.MAX_LIMIT)
        assert found["title"] == title
        assert _lists(found) == _text_result(m, article_id, title, body)
    with pytest.raises(ArticleNotFound):
        m.for_article("sakai-kyufukin-jimu")
    shown = _everywhere(m, [i for i in m.ids if i != "sakai-kyufukin-jimu"] + [LIBRARY["id"]])
    assert "sakai-kyufukin-jimu" not in shown
    assert LIBRARY["id"] in shown
    # the base model itself is untouched: the overlay is a view
    assert base.overlay is None and LIBRARY["id"] not in base.position


def test_an_overlay_of_another_model_is_refused(model, lsa_model):
    doc = related.extract(analyze(LIBRARY["title"]), analyze(LIBRARY["body"]))
    overlay = related.updated_overlay(model, [(LIBRARY["id"], LIBRARY["title"], doc)], [])
    with pytest.raises(ValueError):
        lsa_model.with_overlay(overlay)


@pytest.fixture(scope="session")
def synthetic():
    """240 articles, nine subjects (sentences of the fixture corpus): LSA on, real settings."""
    import random

    from kb.analysis import split_sentences
    from kb.corpus import load_sources
    from conftest import DATA

    subjects = []
    for a in load_sources([DATA / "corpus"]).articles:
        subjects.append((a.title, [a.body[s:e] for s, e in split_sentences(a.body) if e - s > 8]))
    rng = random.Random(7)
    out = []
    for n in range(240):
        title, sentences = subjects[n % len(subjects)]
        body = rng.sample(sentences, 3) + [rng.choice(rng.choice(subjects)[1])]
        out.append((f"s{n:03d}", f"{title}（{n}）", "".join(body)))
    return out


def test_incremental_writes_match_a_refit_closely(synthetic):
    """Fit on 95 %, write the rest (and change and remove some): compare with a refit."""
    docs = {i: related.extract(analyze(t), analyze(b)) for i, t, b in synthetic}
    titles = {i: t for i, t, _ in synthetic}
    ids = list(titles)
    added, removed = ids[-12:], [ids[3], ids[50]]
    changed = {ids[5]: synthetic[7][2], ids[17]: synthetic[30][2]}  # now about other subjects
    new_docs = {i: related.extract(analyze(titles[i]), analyze(b)) for i, b in changed.items()}
    base_ids = ids[:-12]
    base = related.fit(base_ids, [titles[i] for i in base_ids], [docs[i] for i in base_ids])
    assert base.latent.shape[1] > 0  # the LSA half is exercised too
    written = ([(i, titles[i], docs[i]) for i in added]
               + [(i, titles[i], d) for i, d in new_docs.items()])
    m = base.with_overlay(related.updated_overlay(base, written, removed))
    final = [i for i in ids if i not in removed]
    refit = related.fit(final, [titles[i] for i in final], [new_docs.get(i, docs[i]) for i in final])

    overlaps = []
    for i in final:
        ours, theirs = m.for_article(i, 5), refit.for_article(i, 5)
        a = {r["id"] for r in ours["related"]}
        b = {r["id"] for r in theirs["related"]}
        overlaps.append(len(a & b) / max(len(a | b), 1))
        if i in added or i in changed:
            assert len(a & b) >= 4, (i, a, b)  # the written articles themselves: nearly equal
        assert {d["id"] for d in ours["duplicates"]} == {d["id"] for d in theirs["duplicates"]}
    assert sum(overlaps) / len(overlaps) >= 0.9
    for i in removed:
        with pytest.raises(ArticleNotFound):
            m.for_article(i)
    assert not set(removed) & _everywhere(m, final)


# --- the overlay on disk: kb.store, the CLI and the web -----------------------------------


@pytest.fixture()
def store_env(writable_copy):
    """A writable copy of the fixture corpus, its index (with the model) and a Store."""
    from kb.store import Store

    corpus, index = writable_copy
    return corpus, index, Store(corpus, index, lock_timeout=2)


def _generation(index) -> "Path":
    meta = json.loads((index / "meta.json").read_text(encoding="utf-8"))
    return index / meta["generation"]


def test_added_changed_removed_articles_through_the_store(store_env, runner):
    corpus, index, store = store_env
    store.create(LIBRARY)
    assert (_generation(index) / related.OVERLAY_FILE).is_file()
    m = related.open_model(index)
    found = m.for_article(LIBRARY["id"])
    assert found["title"] == LIBRARY["title"]
    assert found["related"][0]["id"] == "hamamatsu-toshokan-shitei-kanri"
    assert "図書館" in found["related"][0]["terms"]
    near = m.for_article("hamamatsu-toshokan-shitei-kanri")["related"]
    assert near[0]["id"] == LIBRARY["id"] and "図書館" in near[0]["terms"]
    assert _lists(found) == _text_result(m, LIBRARY["id"], LIBRARY["title"], LIBRARY["body"],
                                         related.DEFAULT_LIMIT)
    cli_out = runner.invoke(cli, ["related", LIBRARY["id"], "--index", str(index), "--json"])
    assert cli_out.exit_code == 0, cli_out.output
    assert json.loads(cli_out.output)["related"][0]["id"] == "hamamatsu-toshokan-shitei-kanri"

    # change: the neighbours follow the new text, the old pairings go
    store.replace(LIBRARY["id"], {**LIBRARY, "title": "ふるさと納税の受付を委託", "body": FURUSATO})
    m = related.open_model(index)
    assert m.for_article(LIBRARY["id"])["related"][0]["id"] == "minobu-furusato-nozei"
    assert LIBRARY["id"] not in [r["id"] for r in
                                 m.for_article("hamamatsu-toshokan-shitei-kanri", 3)["related"]]
    assert m.for_article("minobu-furusato-nozei")["related"][0]["id"] == LIBRARY["id"]

    # change an article of the build: its stale row is dropped everywhere
    store.replace("hamamatsu-toshokan-shitei-kanri",
                  {"title": "浜松市のふるさと納税", "body": FURUSATO + "浜松市の事例。"})
    m = related.open_model(index)
    found = m.for_article("hamamatsu-toshokan-shitei-kanri")
    assert found["title"] == "浜松市のふるさと納税"
    assert _lists(found) == _text_result(m, found["id"], found["title"],
                                         FURUSATO + "浜松市の事例。", related.DEFAULT_LIMIT)
    assert [d["id"] for d in found["duplicates"]] == [LIBRARY["id"]] or \
        found["related"][0]["id"] == LIBRARY["id"]
    for other in ("gyomu-itaku-shitei-kanri-kaisetsu", "kakegawa-castle-shitei-kanri"):
        listed = {r["id"]: r for r in m.for_article(other, related.MAX_LIMIT)["related"]}
        if "hamamatsu-toshokan-shitei-kanri" in listed:  # then scored with its new text
            assert listed["hamamatsu-toshokan-shitei-kanri"]["title"] == "浜松市のふるさと納税"
            assert "図書館" not in listed["hamamatsu-toshokan-shitei-kanri"]["terms"]

    # remove: gone from every list, from free text, and as an article
    store.delete([LIBRARY["id"]])
    m = related.open_model(index)
    with pytest.raises(ArticleNotFound):
        m.for_article(LIBRARY["id"])
    assert LIBRARY["id"] not in _everywhere(m, [i for i in m.ids])
    found = m.for_text(FURUSATO, related.MAX_LIMIT)
    assert LIBRARY["id"] not in [r["id"] for r in found["related"] + found["duplicates"]]
    store.delete(["sakai-kyufukin-jimu"])
    m = related.open_model(index)
    with pytest.raises(ArticleNotFound):
        m.for_article("sakai-kyufukin-jimu")
    assert "sakai-kyufukin-jimu" not in _everywhere(m, [i for i in m.ids
                                                        if i != "sakai-kyufukin-jimu"])


def test_a_full_rebuild_refits_and_starts_without_an_overlay(store_env):
    from kb.rebuild import rebuild

    corpus, index, store = store_env
    store.create(LIBRARY)
    rebuild([corpus], index, procs=1, show_progress=False)
    assert not (_generation(index) / related.OVERLAY_FILE).exists()
    m = related.open_model(index)
    assert m.overlay is None and LIBRARY["id"] in m.position


def test_an_overlay_lost_in_a_crash_is_redone_by_recovery(store_env, monkeypatch):
    """Killed between the index commit and the overlay write: serving works, recovery redoes it."""
    from kb.store import JOURNAL_FILE

    corpus, index, store = store_env
    with monkeypatch.context() as patched:
        patched.setattr(related, "after_update", lambda *args: None)  # the overlay never written
        store.create(LIBRARY)
    assert not (_generation(index) / related.OVERLAY_FILE).exists()
    client = create_app({"INDEX_DIR": str(index), "TESTING": True}).test_client()
    r = client.get(f"/api/related/{LIBRARY['id']}")
    assert r.status_code == 200  # matched by its text until the overlay has it
    assert r.get_json()["related"][0]["id"] == "hamamatsu-toshokan-shitei-kanri"
    # what the killed writer left: its intent, the file and the index commit
    (index / JOURNAL_FILE).write_text(json.dumps({
        "pid": 1, "corpus": str(corpus),
        "entries": [{"id": LIBRARY["id"], "target": str(corpus / f"{LIBRARY['id']}.md"),
                     "old": None}]}), encoding="utf-8")
    assert store.recover() == [LIBRARY["id"]]
    assert related.open_model(index).for_article(LIBRARY["id"])["title"] == LIBRARY["title"]
    assert client.get(f"/api/related/{LIBRARY['id']}").status_code == 200


@pytest.mark.parametrize("damage", [b"", b"not a zip file", "truncated", "other model"])
def test_a_broken_overlay_falls_back_to_the_build_with_a_warning(store_env, caplog, damage):
    corpus, index, store = store_env
    store.create(LIBRARY)
    path = _generation(index) / related.OVERLAY_FILE
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "other model":
        doc = related.extract(analyze("窓口"), analyze("窓口業務の委託。"))
        other = related.fit(["x", "y"], ["x", "y"], [doc, doc])
        related.write_overlay(path.parent, related.updated_overlay(other, [("z", "z", doc)], []))
    else:
        path.write_bytes(damage)
    client = create_app({"INDEX_DIR": str(index), "TESTING": True}).test_client()
    with caplog.at_level("WARNING", logger="kb.related"):
        base_page = client.get("/api/related/hamamatsu-toshokan-shitei-kanri")
        new_page = client.get(f"/api/related/{LIBRARY['id']}")
        article_page = client.get(f"/articles/{LIBRARY['id']}")
    assert base_page.status_code == 200 and new_page.status_code == 200
    assert article_page.status_code == 200 and "関連事例" in article_page.get_data(as_text=True)
    assert any("overlay" in rec.getMessage() for rec in caplog.records)
    assert related.open_model(index).overlay is None  # the CLI falls back the same way
    # the next write starts a fresh overlay
    store.replace(LIBRARY["id"], {**LIBRARY, "title": "ふるさと納税の受付を委託", "body": FURUSATO})
    assert related.open_model(index).for_article(LIBRARY["id"])["related"][0]["id"] == \
        "minobu-furusato-nozei"


def test_the_web_sees_each_write_without_reloading_the_build_model(store_env, monkeypatch):
    corpus, index, _ = store_env
    token = "test-write-token-0123456789abcdef"
    app = create_app({"INDEX_DIR": str(index), "CORPUS_DIR": str(corpus), "TESTING": True,
                      "WRITE_TOKEN": token, "LOCK_TIMEOUT": 2})
    client, auth = app.test_client(), {"Authorization": f"Bearer {token}"}
    assert client.get("/api/related/hamamatsu-toshokan-shitei-kanri").status_code == 200
    loads = []
    real = related._load_fitted
    monkeypatch.setattr(related, "_load_fitted", lambda folder: loads.append(folder) or real(folder))

    assert client.post("/api/articles", json=LIBRARY, headers=auth).status_code == 201
    r = client.get(f"/api/related/{LIBRARY['id']}")
    assert r.status_code == 200
    assert r.get_json()["title"] == LIBRARY["title"]
    assert r.get_json()["related"][0]["id"] == "hamamatsu-toshokan-shitei-kanri"
    near = client.get("/api/related/hamamatsu-toshokan-shitei-kanri").get_json()["related"]
    assert near[0]["id"] == LIBRARY["id"]

    r = client.put(f"/api/articles/{LIBRARY['id']}", headers=auth,
                   json={"title": "ふるさと納税の受付を委託", "body": FURUSATO})
    assert r.status_code == 200
    data = client.get(f"/api/related/{LIBRARY['id']}").get_json()
    assert data["title"] == "ふるさと納税の受付を委託"
    assert data["related"][0]["id"] == "minobu-furusato-nozei"
    found = client.post("/api/related", json={"text": FURUSATO}).get_json()
    assert LIBRARY["id"] in [r["id"] for r in found["related"] + found["duplicates"]]

    assert client.delete(f"/api/articles/{LIBRARY['id']}", headers=auth).status_code == 200
    assert client.get(f"/api/related/{LIBRARY['id']}").status_code == 404
    found = client.post("/api/related", json={"text": FURUSATO}).get_json()
    assert LIBRARY["id"] not in [r["id"] for r in found["related"] + found["duplicates"]]
    assert loads == []  # only the overlay was read again


def test_merged_lists_of_build_articles_equal_scoring_them_afresh(synthetic):
    """The stored lists, minus stale rows, plus the overlay equal a full scoring of the article."""
    docs = {i: related.extract(analyze(t), analyze(b)) for i, t, b in synthetic}
    titles = {i: t for i, t, _ in synthetic}
    ids = list(titles)[:-12]
    base = related.fit(ids, [titles[i] for i in ids], [docs[i] for i in ids])
    # Remove most of s000's stored neighbours (its list must be rescored), change others.
    gone = [r["id"] for r in base.for_article("s000", related.MAX_LIMIT)["related"]][:15]
    written = [(i, titles[i], docs[i]) for i in list(titles)[-12:]]
    written += [(i, titles[i], docs["s100"]) for i in ("s010", "s011")]
    m = base.with_overlay(related.updated_overlay(base, written, gone))
    for i in ids:
        if i in gone or i in ("s010", "s011"):
            continue  # removed, or written: scored afresh anyway
        for limit in (3, related.DEFAULT_LIMIT):
            got = m.for_article(i, limit)
            pos = m.position[i]
            want = m._rank(m.matrix[pos], m.latent[pos], related.MAX_LIMIT, [i])
            assert len(got["related"]) == min(limit, len(want["related"]))
            assert [r["score"] for r in got["related"]] == pytest.approx(
                [r["score"] for r in want["related"][:limit]], abs=2e-4)
            scores = [r["score"] for r in want["related"]]
            for g, w in zip(got["related"], want["related"]):
                tied = scores.count(w["score"]) > 1  # equal texts: either order is right
                assert g["id"] == w["id"] or tied, i
                assert g["terms"] == w["terms"] or tied
            assert {d["id"] for d in got["duplicates"]} == {d["id"] for d in want["duplicates"]}


def test_a_large_knowledge_base_scores_neighbours_when_asked(articles, lsa_model, monkeypatch,
                                                            tmp_path):
    """Above PRECOMPUTE_MAX_ARTICLES the build skips the all-pairs step; answers are the same."""
    monkeypatch.setattr(related, "PRECOMPUTE_MAX_ARTICLES", 0)
    docs = [related.extract(analyze(a.title), analyze(a.body)) for a in articles]
    lazy = related.fit([a.id for a in articles], [a.title for a in articles], docs,
                       lsa_model.settings)
    assert lazy.info["precomputed"] is False and lazy.arrays["nb_idx"].shape[1] == 0
    lazy.save(tmp_path)
    loaded = related.load(tmp_path)  # the flag survives a save and a load
    assert loaded.info["precomputed"] is False
    for a in articles[:25]:
        want = lsa_model.for_article(a.id, limit=10)
        got = loaded.for_article(a.id, limit=10)
        assert [r["id"] for r in got["related"]] == [r["id"] for r in want["related"]], a.id
        assert [r["score"] for r in got["related"]] == pytest.approx(
            [r["score"] for r in want["related"]], abs=1e-4)
        assert {d["id"] for d in got["duplicates"]} == {d["id"] for d in want["duplicates"]}


def test_neighbours_scored_in_parallel_equal_the_sequential_ones(lsa_model, monkeypatch):
    m = lsa_model
    sequential = related._neighbours(m.matrix, m.latent, m.settings.alpha)
    monkeypatch.setattr(related, "PARALLEL_MIN_ARTICLES", 1)
    monkeypatch.setattr(related.os, "cpu_count", lambda: 3)  # three ranges, even on one core
    parallel = related._neighbours(m.matrix, m.latent, m.settings.alpha)
    assert sequential.keys() == parallel.keys()
    for name in sequential:
        np.testing.assert_array_equal(sequential[name], parallel[name], err_msg=name)
