"""The write API and the admin page: who may write, what they may send, what they get back."""
from __future__ import annotations

import re
import shutil

import pytest

from kb.durable import writer_lock
from kb.rebuild import rebuild
from web import create_app

from test_web import assert_error

TOKEN = "test-write-token-0123456789abcdef"
READ = "test-read-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NEW = {"id": "ichikawa-madoguchi", "title": "市川市の窓口受付を委託", "prefecture": "千葉県",
       "body": "市川市は住民票の窓口受付を民間事業者へ委託した。", "categories": ["窓口業務"]}


@pytest.fixture(scope="module")
def built(tmp_path_factory, corpus_dir):
    """A corpus and index that the tests of this module write to (each with its own ids)."""
    root = tmp_path_factory.mktemp("write-api")
    shutil.copytree(corpus_dir, root / "corpus")
    rebuild([root / "corpus"], root / "index", procs=1, show_progress=False)
    return root


def make_app(built, **config):
    return create_app({"INDEX_DIR": str(built / "index"), "CORPUS_DIR": str(built / "corpus"),
                       "TESTING": True, "WRITE_TOKEN": TOKEN, "LOCK_TIMEOUT": 0.3, **config})


@pytest.fixture(scope="module")
def wapp(built):
    return make_app(built)


@pytest.fixture()
def wclient(wapp):
    return wapp.test_client()


def test_create_read_replace_delete(wclient):
    r = wclient.post("/api/articles", json={**NEW, "id": "crud-1"}, headers=AUTH)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["ok"] is True and r.get_json()["action"] == "created"
    assert r.headers["Location"].endswith("/api/articles/crud-1")
    assert wclient.get("/api/articles/crud-1").get_json()["article"]["title"] == NEW["title"]
    hits = wclient.get("/api/search", query_string={"q": "市川市"}).get_json()["hits"]
    assert "crud-1" in [h["id"] for h in hits]

    r = wclient.put("/api/articles/crud-1", json={"title": "改題", "body": "新しい本文。"},
                    headers=AUTH)
    assert r.status_code == 200 and r.get_json()["action"] == "replaced"
    assert wclient.get("/api/articles/crud-1").get_json()["article"]["title"] == "改題"

    r = wclient.delete("/api/articles/crud-1", headers=AUTH)
    assert r.status_code == 200 and r.get_json()["action"] == "deleted"
    assert_error(wclient.get("/api/articles/crud-1"), 404, "not_found")


def test_conflicts_and_missing(wclient):
    assert wclient.post("/api/articles", json={**NEW, "id": "dup-1"}, headers=AUTH).status_code == 201
    assert_error(wclient.post("/api/articles", json={**NEW, "id": "dup-1"}, headers=AUTH), 409,
                 "conflict")
    assert_error(wclient.put("/api/articles/no-such", json={**NEW, "id": "no-such"},
                             headers=AUTH), 404)
    assert_error(wclient.delete("/api/articles/no-such", headers=AUTH), 404)
    assert_error(wclient.put("/api/articles/dup-1", json={**NEW, "id": "other"}, headers=AUTH),
                 400, "bad_article")


def test_writes_need_the_token(built, wclient):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"}):
        r = wclient.post("/api/articles", json=NEW, headers=headers)
        assert_error(r, 401, "unauthorized")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert_error(wclient.delete("/api/articles/shiroi-madoguchi-itaku", headers=headers), 401)
    disabled = make_app(built, WRITE_TOKEN="").test_client()
    r = disabled.post("/api/articles", json=NEW, headers=AUTH)
    assert_error(r, 403, "forbidden")
    assert "KB_WRITE_TOKEN" in r.get_json()["error"]["message"]
    assert_error(disabled.put("/api/articles/x", json=NEW, headers={"Authorization": "Bearer "}),
                 403)


@pytest.mark.parametrize("data,content_type,status", [
    (b'{"id": "x"', "application/json", 400),
    (b"", "application/json", 400),
    (b"[]", "application/json", 400),
    (b'"just a string"', "application/json", 400),
    (b"\xff\xfe{}", "application/json", 400),
    (b'{"id": "a", "title": "\\ud800", "body": "x"}', "application/json", 400),
    (b'{"id": "a", "title": NaN, "body": "x"}', "application/json", 400),
    (b"[" * 50_000 + b"]" * 50_000, "application/json", 400),
    (b'{"id": "a"}', "text/plain", 415),
    (b"id=a&title=b", "application/x-www-form-urlencoded", 415),
    (b'{"id": "a"}', "application/json; charset=latin-1", 415),
    (b'{"id": "a"}', None, 415),
])
def test_bad_bodies_are_clear_4xx(wclient, data, content_type, status):
    headers = dict(AUTH)
    if content_type:
        headers["Content-Type"] = content_type
    assert_error(wclient.post("/api/articles", data=data, headers=headers), status)


def test_oversized_bodies_are_413(built):
    client = make_app(built, MAX_CONTENT_LENGTH=1000).test_client()
    r = client.post("/api/articles", json={**NEW, "body": "あ" * 2000}, headers=AUTH)
    assert_error(r, 413)


@pytest.mark.parametrize("bad_id", ["..", "../etc/passwd", "%2e%2e", "..%2F..%2Fetc", "a%00b",
                                    "a/b", ".hidden", "x" * 300, "%ff"])
def test_path_tricks_in_ids(wclient, built, bad_id):
    for r in (wclient.put(f"/api/articles/{bad_id}", json=NEW, headers=AUTH),
              wclient.delete(f"/api/articles/{bad_id}", headers=AUTH)):
        assert r.status_code in (400, 404), (bad_id, r.status_code)
        assert_error(r, r.status_code)
    r = wclient.post("/api/articles", json={**NEW, "id": bad_id}, headers=AUTH)
    assert_error(r, 400)
    assert not (built / "etc").exists() and not (built / "corpus" / "..md").exists()


def test_busy_writer_is_503_with_retry_after(built, wclient):
    with writer_lock(built / "index", 1):
        r = wclient.post("/api/articles", json={**NEW, "id": "busy-1"}, headers=AUTH)
    assert_error(r, 503, "busy")
    assert int(r.headers["Retry-After"]) >= 1
    assert wclient.post("/api/articles", json={**NEW, "id": "busy-1"}, headers=AUTH
                        ).status_code == 201


def test_method_not_allowed_lists_the_write_methods(wclient):
    r = wclient.patch("/api/articles/shiroi-madoguchi-itaku", json=NEW, headers=AUTH)
    assert_error(r, 405)
    assert {"GET", "PUT", "DELETE"} <= set(r.headers["Allow"].replace(" ", "").split(","))


def test_json_responses_get_a_no_content_csp(wclient):
    r = wclient.get("/api/search", query_string={"q": "窓口"})
    assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert r.headers["X-Content-Type-Options"] == "nosniff"


# --- read token -------------------------------------------------------------------------


def test_read_token_closes_reading_but_not_healthz(built):
    client = make_app(built, READ_TOKEN=READ).test_client()
    assert_error(client.get("/api/search?q=窓口"), 401)
    assert client.get("/api/search?q=窓口",
                      headers={"Authorization": f"Bearer {READ}"}).status_code == 200
    assert client.get("/api/search?q=窓口", headers=AUTH).status_code == 200
    assert client.get("/healthz").status_code == 200
    page = client.get("/search?q=窓口")
    assert page.status_code == 302 and "/admin" in page.headers["Location"]
    # a reader cannot write
    assert_error(client.post("/api/articles", json=NEW,
                             headers={"Authorization": f"Bearer {READ}"}), 401)
    # signing in with the read token opens the pages
    client.get("/admin")
    r = client.post("/admin/login", data={"token": READ, "csrf_token": _csrf(client),
                                          "next": "/search?q=窓口"})
    assert r.status_code == 302 and r.headers["Location"].endswith("/search?q=%E7%AA%93%E5%8F%A3") \
        or r.headers["Location"].endswith("/search?q=窓口")
    assert client.get("/search?q=窓口").status_code == 200
    assert client.get("/admin/articles/new").status_code == 302  # but not the admin page


# --- the admin page -----------------------------------------------------------------------


def _csrf(client) -> str:
    html = client.get("/admin").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _login(client) -> str:
    client.get("/admin")
    r = client.post("/admin/login", data={"token": TOKEN, "csrf_token": _csrf(client)})
    assert r.status_code == 302
    return _csrf(client)


def test_admin_login_needs_the_token_and_a_csrf_token(wclient):
    page = wclient.get("/admin")
    assert page.status_code == 200 and "トークン" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert wclient.post("/admin/login", data={"token": TOKEN}).status_code == 403
    r = wclient.post("/admin/login", data={"token": "wrong", "csrf_token": _csrf(wclient)})
    assert r.status_code == 401 and "トークンが違います" in r.get_data(as_text=True)
    assert wclient.get("/admin/articles/new").status_code == 302
    csrf = _login(wclient)
    assert "記事を追加する" in wclient.get("/admin").get_data(as_text=True)
    assert "kb_session" in wclient.get_cookie("kb_session").key
    cookie = wclient.get_cookie("kb_session")
    assert cookie.http_only and cookie.same_site == "Strict"
    assert csrf


def test_admin_add_edit_delete(wclient):
    csrf = _login(wclient)
    form = {"id": "admin-1", "title": "管理画面からの記事", "body": "管理画面で書いた本文。",
            "prefecture": "千葉県", "categories": ["窓口業務"], "tags": "タグ1、タグ2"}
    assert wclient.post("/admin/articles/new", data=form).status_code == 403  # no CSRF token
    r = wclient.post("/admin/articles/new", data={**form, "csrf_token": csrf})
    assert r.status_code == 200 and "追加しました" in r.get_data(as_text=True)
    article = wclient.get("/api/articles/admin-1").get_json()["article"]
    assert article["tags"] == ["タグ1", "タグ2"] and article["categories"] == ["窓口業務"]

    edit = wclient.get("/admin/articles/admin-1").get_data(as_text=True)
    assert "管理画面で書いた本文。" in edit and "タグ1、タグ2" in edit
    r = wclient.post("/admin/articles/admin-1", data={**form, "title": "改題", "csrf_token": csrf})
    assert "更新しました" in r.get_data(as_text=True)
    assert wclient.get("/api/articles/admin-1").get_json()["article"]["title"] == "改題"

    bad = wclient.post("/admin/articles/admin-1", data={**form, "url": "javascript:alert(1)",
                                                        "csrf_token": csrf})
    assert bad.status_code == 400 and "url" in bad.get_data(as_text=True)

    r = wclient.post("/admin/articles/admin-1/delete", data={"csrf_token": csrf})
    assert "削除しました" in r.get_data(as_text=True)
    assert_error(wclient.get("/api/articles/admin-1"), 404)


def test_admin_refuses_other_origins(wclient):
    csrf = _login(wclient)
    r = wclient.post("/admin/articles/new", data={"id": "x", "title": "t", "body": "b",
                                                  "csrf_token": csrf},
                     headers={"Origin": "https://evil.example"})
    assert r.status_code == 403


def test_login_redirect_stays_on_this_site(wclient):
    wclient.get("/admin")
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        r = wclient.post("/admin/login", data={"token": TOKEN, "csrf_token": _csrf(wclient),
                                               "next": target})
        assert r.status_code == 302 and "evil" not in r.headers["Location"]


def test_admin_without_a_write_token_explains_how_to_enable(built):
    client = make_app(built, WRITE_TOKEN="").test_client()
    html = client.get("/admin").get_data(as_text=True)
    assert "KB_WRITE_TOKEN" in html
    assert client.get("/admin/articles/new").status_code == 403


def test_every_worker_derives_the_same_session_key(built):
    a, b = make_app(built), make_app(built)
    assert a.config["SECRET_KEY"] == b.config["SECRET_KEY"] != TOKEN
    other = make_app(built, WRITE_TOKEN="another-token-0123456789")
    assert other.config["SECRET_KEY"] != a.config["SECRET_KEY"]
    client = a.test_client()
    _login(client)
    cookie = client.get_cookie("kb_session").value
    second = b.test_client()
    second.set_cookie("kb_session", cookie)
    assert second.get("/admin/articles/new").status_code == 200
