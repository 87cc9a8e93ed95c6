"""The Flask pages and their JSON twins, through the test client over a real index."""
from __future__ import annotations

import pytest

from kb.corpus import Article
from kb.index import build
from web import create_app


def _first_id(client, q):
    data = client.get("/api/search", query_string={"q": q}).get_json()
    assert data["ok"] is True and data["hits"], data
    return data["hits"][0]["id"]


def assert_error(response, status, code=None):
    """Every API error has the one shape and the right status."""
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["ok"] is False
    assert set(body["error"]) >= {"code", "message"}
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code


def test_api_search_shape(client):
    r = client.get("/api/search", query_string={"q": "窓口"})
    assert r.status_code == 200
    data = r.get_json()
    assert data["ok"] is True
    assert data["total"] >= 1 and data["page"] == 1
    hit = data["hits"][0]
    assert {"id", "title", "score", "snippet", "snippet_html", "date", "prefecture",
            "categories"} <= set(hit)
    assert set(data["facets"]) == {"prefecture", "category", "year"}
    assert "<mark>" in hit["snippet_html"]


def test_api_search_full_width_matches_half_width(client):
    full = client.get("/api/search", query_string={"q": "ＢＰＯ"}).get_json()
    half = client.get("/api/search", query_string={"q": "BPO"}).get_json()
    assert full["total"] == half["total"] >= 1
    assert [h["id"] for h in full["hits"]] == [h["id"] for h in half["hits"]]


def test_api_search_filters_as_parameters(client):
    data = client.get("/api/search", query_string={"q": "委託"}).get_json()
    pref = data["facets"]["prefecture"][0]
    filtered = client.get("/api/search", query_string={"q": "委託", "prefecture": pref["value"]}
                          ).get_json()
    assert filtered["total"] == pref["count"]
    assert all(h["prefecture"] == pref["value"] for h in filtered["hits"])


@pytest.mark.parametrize("params,code", [
    ({"q": ""}, "bad_query"),
    ({"q": "   "}, "bad_query"),
    ({"q": "あ" * 1001}, "bad_query"),
    ({"q": "窓口", "page": "0"}, "bad_query"),
    ({"q": "窓口", "page": "abc"}, "bad_query"),
    ({"q": "窓口", "per_page": "100000"}, "bad_query"),
    ({"q": "窓口", "sort": "random"}, "bad_query"),
    ({"q": "窓口", "year": "そのうち"}, "bad_query"),
])
def test_api_search_bad_input(client, params, code):
    assert_error(client.get("/api/search", query_string=params), 400, code)


@pytest.mark.parametrize("q", ['"', "(", ")", ":", "*", "?", "-", "AND", "OR", "NOT", "^", "~",
                               "[", "]", '"窓口" AND (委託 OR -業務) ^2 ~ [x] *?:',
                               "prefecture:", "-", "OR 窓口", "窓口 OR"])
def test_query_syntax_characters_never_500(client, q):
    r = client.get("/api/search", query_string={"q": q})
    assert r.status_code in (200, 400)
    if r.status_code == 400:
        assert_error(r, 400)


def test_api_article_and_404(client):
    article_id = _first_id(client, "窓口")
    r = client.get(f"/api/articles/{article_id}")
    assert r.status_code == 200
    article = r.get_json()["article"]
    assert article["id"] == article_id and article["body"]
    assert "path" not in article
    assert_error(client.get("/api/articles/no-such-article"), 404, "not_found")
    assert_error(client.get("/api/articles/..%2F..%2Fetc%2Fpasswd"), 404)


def test_search_page_shows_snippets_facets_and_paging(client):
    r = client.get("/search", query_string={"q": "委託", "per_page": 2})
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "<mark>" in html and "件" in html
    assert "都道府県" in html and "カテゴリ" in html
    assert "次へ" in html
    page2 = client.get("/search", query_string={"q": "委託", "per_page": 2, "page": 2})
    assert page2.status_code == 200 and "前へ" in page2.get_data(as_text=True)


def test_pages_show_japanese_errors(client):
    r = client.get("/search", query_string={"q": "あ" * 1001})
    assert r.status_code == 400
    assert "文字以内" in r.get_data(as_text=True)
    r = client.get("/articles/no-such-article")
    assert r.status_code == 404 and "見つかりません" in r.get_data(as_text=True)
    r = client.get("/no/such/page")
    assert r.status_code == 404 and "見つかりません" in r.get_data(as_text=True)
    assert_error(client.get("/api/no-such-endpoint"), 404)


def test_article_page(client):
    article_id = _first_id(client, "窓口")
    r = client.get(f"/articles/{article_id}")
    assert r.status_code == 200
    assert "<h1>" in r.get_data(as_text=True)


def test_healthz(client):
    data = client.get("/healthz").get_json()
    assert data["ok"] is True and data["articles"] >= 1


def test_security_headers(client):
    r = client.get("/")
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"


def test_method_not_allowed_has_shape(client):
    assert_error(client.post("/api/search"), 405)


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)></mark><b>太字</b>'


@pytest.fixture(scope="module")
def hostile_client(tmp_path_factory):
    index_dir = tmp_path_factory.mktemp("hostile-index")
    article = Article(
        id="hostile", title=f"窓口の記事 {HOSTILE}",
        body=f"窓口業務の委託について。{HOSTILE} 窓口は混雑した。<a href=\"javascript:alert(1)\">x</a>",
        prefecture="千葉県", categories=["窓口業務"], tags=["<i>tag</i>"], date="2023-05-01")
    build([article], index_dir, procs=1, show_progress=False)
    app = create_app({"INDEX_DIR": str(index_dir), "TESTING": True})
    return app.test_client()


@pytest.mark.parametrize("url", ["/search?q=窓口", "/search?q=" + HOSTILE, "/articles/hostile",
                                 "/search?q=窓口&category=窓口業務"])
def test_hostile_text_is_escaped_in_pages(hostile_client, url):
    html = hostile_client.get(url).get_data(as_text=True)
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "<b>太字" not in html
    assert "<i>tag" not in html
    assert 'href="javascript:' not in html
    # only our own <mark> tags, balanced
    assert html.count("<mark>") == html.count("</mark>")


def test_hostile_text_is_escaped_in_json_snippets(hostile_client):
    hit = hostile_client.get("/api/search?q=窓口").get_json()["hits"][0]
    assert "<script" not in hit["snippet_html"]
    assert hit["snippet_html"].count("<mark>") == hit["snippet_html"].count("</mark>")
    assert "&lt;script&gt;" in hit["snippet_html"] or "script" not in hit["snippet"]


def test_missing_index_is_a_clear_503(tmp_path):
    app = create_app({"INDEX_DIR": str(tmp_path / "none"), "TESTING": True})
    r = app.test_client().get("/api/search?q=窓口")
    assert_error(r, 503, "index_missing")


# --- how the query was read: synonyms, readings, relaxing, もしかして, explain -----------


@pytest.fixture(scope="module")
def synonym_client(index_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("synonyms") / "synonyms.txt"
    path.write_text("BPO, 業務委託\n", encoding="utf-8")
    app = create_app({"INDEX_DIR": str(index_dir), "TESTING": True, "SYNONYMS": str(path)})
    return app.test_client()


def test_api_explain_says_which_words_matched(synonym_client):
    data = synonym_client.get("/api/search", query_string={"q": "BPO", "explain": "1"}).get_json()
    assert data["expansions"][0]["to"] == ["業務委託"]
    vias = {m["via"] for h in data["hits"] for m in h["matched"]}
    assert vias == {"word", "synonym"}
    assert all({"term", "field", "via"} == set(m) for h in data["hits"] for m in h["matched"])
    plain = synonym_client.get("/api/search", query_string={"q": "BPO"}).get_json()
    assert "matched" not in plain["hits"][0]


def test_search_page_shows_how_the_query_was_read(synonym_client):
    html = synonym_client.get("/search", query_string={"q": "BPO"}).get_data(as_text=True)
    assert "「BPO」の同義語「業務委託」も検索しています。" in html
    assert "一致: " in html and "(本文" in html and "同義語)" in html
    html = synonym_client.get("/search", query_string={"q": "かけがわ"}).get_data(as_text=True)
    assert "読み「かけがわ」を「掛川」としても検索しています。" in html
    html = synonym_client.get("/search", query_string={"q": "指定管里"}).get_data(as_text=True)
    assert "もしかして" in html and "指定管理</a>" in html
    assert "一部の語で検索しています" in html
    html = synonym_client.get("/search", query_string={"q": "掛川城の指定管理は誰が担っている？"}
                              ).get_data(as_text=True)
    assert "質問の語（誰）は検索に使っていません。" in html
