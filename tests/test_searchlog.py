"""The search log (kb/searchlog.py) and its web side (web/insights.py)."""
from __future__ import annotations

import multiprocessing
import sqlite3
import time

import pytest

from kb.searchlog import SearchLog, normalize_query
from web import create_app

DAY = 86400
TOKEN = "editor-token-for-tests"


@pytest.fixture()
def log(tmp_path):
    return SearchLog(tmp_path / "logs" / "search.sqlite3", retention_days=30)


def test_created_on_first_write_in_wal_mode(log):
    assert not log.path.exists()
    log.record_search("s1", "窓口", hits=3)
    assert log.path.exists()
    with sqlite3.connect(log.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT query, hits, client, agent FROM searches").fetchall() == [
            ("窓口", 3, None, None)]


def test_no_personal_data_unless_the_operator_keeps_it(tmp_path):
    off = SearchLog(tmp_path / "off.sqlite3")
    off.record_search("a", "窓口", client="192.0.2.1", agent="Mozilla")
    on = SearchLog(tmp_path / "on.sqlite3", keep_client=True)
    on.record_search("b", "窓口", client="192.0.2.1", agent="Mozilla")
    for path, expected in ((off.path, (None, None)), (on.path, ("192.0.2.1", "Mozilla"))):
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT client, agent FROM searches").fetchone() == expected


def test_insights_popular_zero_hits_and_no_clicks(log):
    now = time.time()
    for i in range(3):
        log.record_search(f"m{i}", "窓口 委託", hits=5, at=now - i)
    log.record_search("m-typed-wide", "窓口　委託", hits=5, at=now)  # same query, other spaces
    log.record_search("m-page2", "窓口 委託", hits=5, page=2, at=now)  # paging is not a search
    log.record_search("z1", "ドローン 点検", hits=0, at=now)
    log.record_search("z2", "ドローン点検", hits=0, at=now)
    log.record_search("z3", "ドローン 点検", hits=0, at=now)
    log.record_search("n1", "ふるさと納税", hits=4, at=now)
    assert log.record_click("m0", "shiroi-madoguchi-itaku", 1)
    assert log.record_click("m-page2", "akita-shimin-call-center", 12)
    assert not log.record_click("no-such-search", "x", 1)  # clicks need a logged search

    data = log.insights(days=7, now=now)
    assert data["searches"] == 8 and data["zero_hit_searches"] == 3
    assert data["clicked_searches"] == 2
    top = data["popular"][0]
    assert top["query"] in ("窓口 委託", "窓口　委託")  # one group, however it was spaced
    assert top["searches"] == 4 and top["clicks"] == 2
    zero = [r["query"] for r in data["zero_hits"]]
    assert zero[0] == "ドローン 点検" and "ドローン点検" in zero
    assert [r["query"] for r in data["no_clicks"]] == ["ふるさと納税"]


def test_retention_deletes_old_rows(log):
    now = time.time()
    log.record_search("old", "古い検索", hits=1, at=now - 40 * DAY)
    log.record_click("old", "a", 1, at=now - 40 * DAY)
    log.record_search("new", "新しい検索", hits=1, at=now - 1 * DAY)
    log.record_click("new", "a", 1, at=now - 1 * DAY)
    with sqlite3.connect(log.path) as conn:  # expired rows go as the log is written
        assert [r[0] for r in conn.execute("SELECT id FROM searches")] == ["new"]
        assert conn.execute("SELECT COUNT(*) FROM clicks").fetchone()[0] == 1
    assert [r["query"] for r in log.insights(days=365, now=now)["popular"]] == ["新しい検索"]
    assert log.purge(now=now + 30 * DAY) == 1  # a month later "new" is old too
    with sqlite3.connect(log.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM searches").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM clicks").fetchone()[0] == 0


def test_insights_window(log):
    now = time.time()
    log.record_search("a", "先月", hits=1, at=now - 20 * DAY)
    log.record_search("b", "今週", hits=1, at=now - 1 * DAY)
    assert [r["query"] for r in log.insights(days=7, now=now)["popular"]] == ["今週"]
    assert log.insights(days=30, now=now)["searches"] == 2


def test_insights_of_a_log_not_yet_written(log):
    data = log.insights()
    assert data["searches"] == 0 and data["popular"] == [] and not log.path.exists()


def test_normalize_query():
    assert normalize_query(" ＢＰＯ　窓口  委託 ") == "bpo 窓口 委託"


def _write_many(path: str, worker: int, n: int) -> None:
    log = SearchLog(path)
    for i in range(n):
        log.record_search(f"w{worker}-{i}", f"検索{i % 5}", hits=i % 3)
        log.record_click(f"w{worker}-{i}", "a", 1)


def test_several_processes_write_at_once(tmp_path):
    path = str(tmp_path / "shared.sqlite3")
    SearchLog(path).create()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_many, args=(path, w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM searches").fetchone()[0] == 160
        assert conn.execute("SELECT COUNT(*) FROM clicks").fetchone()[0] == 160


# --- in the app -----------------------------------------------------------------------------


@pytest.fixture()
def logged_app(index_dir, tmp_path):
    return create_app({"INDEX_DIR": str(index_dir), "TESTING": True, "WRITE_TOKEN": TOKEN,
                       "SEARCH_LOG": str(tmp_path / "search.sqlite3"), "SEARCH_LOG_DAYS": 30})


def _search_id(html: str) -> str:
    marker = 'data-search-log="'
    start = html.index(marker) + len(marker)
    return html[start:html.index('"', start)]


def test_searches_and_clicks_are_logged(logged_app):
    client = logged_app.test_client()
    html = client.get("/search", query_string={"q": "窓口"}).get_data(as_text=True)
    client.get("/search", query_string={"q": "存在しないはずの語ぴよ", "prefecture": "沖縄県"})
    client.get("/api/search", query_string={"q": "窓口"})
    r = client.post("/api/click", json={"search": _search_id(html), "id": "shiroi-madoguchi-itaku",
                                        "rank": 1})
    assert r.status_code == 200 and r.get_json() == {"ok": True, "recorded": True}
    with sqlite3.connect(logged_app.config["SEARCH_LOG"]) as conn:
        rows = conn.execute("SELECT query, filters, via, hits FROM searches ORDER BY at").fetchall()
    assert [(q, via) for q, _, via, _ in rows] == [
        ("窓口", "page"), ("存在しないはずの語ぴよ", "page"), ("窓口", "api")]
    assert '"prefecture": ["沖縄県"]' in rows[1][1] and rows[1][3] == 0

    data = client.get("/api/admin/insights", headers={"Authorization": f"Bearer {TOKEN}"}
                      ).get_json()
    assert data["ok"] is True and data["clicked_searches"] == 1
    assert [r["query"] for r in data["zero_hits"]] == ["存在しないはずの語ぴよ"]


def test_a_broken_log_never_breaks_a_search(index_dir, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    app = create_app({"INDEX_DIR": str(index_dir), "TESTING": True,
                      "SEARCH_LOG": str(blocker / "search.sqlite3")})
    client = app.test_client()
    assert client.get("/search", query_string={"q": "窓口"}).status_code == 200
    assert client.get("/api/search", query_string={"q": "窓口"}).get_json()["ok"] is True
    r = client.post("/api/click", json={"search": "x", "id": "y", "rank": 1})
    assert r.get_json() == {"ok": True, "recorded": False}


def test_logging_can_be_turned_off(index_dir, tmp_path):
    app = create_app({"INDEX_DIR": str(tmp_path / "ix"), "TESTING": True, "SEARCH_LOG": "off"})
    with app.test_request_context():
        from web.insights import get_log
        assert get_log() is None


@pytest.mark.parametrize("body", [None, "text", {"search": 1, "id": "a"}, {"id": "a"}])
def test_click_needs_a_proper_body(logged_app, body):
    client = logged_app.test_client()
    r = client.post("/api/click", json=body) if body is not None else client.post("/api/click")
    assert r.status_code == 400 and r.get_json()["ok"] is False


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"},
                                     {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"}])
def test_click_from_another_site_is_refused(logged_app, headers):
    r = logged_app.test_client().post("/api/click", json={"search": "a", "id": "b"},
                                      headers=headers)
    assert r.status_code == 400


def test_insights_need_the_write_token(logged_app, index_dir):
    client = logged_app.test_client()
    assert client.get("/api/admin/insights").status_code == 401
    assert client.get("/api/admin/insights", headers={"Authorization": "Bearer wrong"}
                      ).status_code == 401
    r = client.get("/admin/insights")
    assert r.status_code == 302 and "/admin?next=" in r.headers["Location"]
    no_token = create_app({"INDEX_DIR": str(index_dir), "TESTING": True, "SEARCH_LOG": "off"})
    assert no_token.test_client().get("/api/admin/insights").status_code == 403
    r = no_token.test_client().get("/admin/insights")
    assert r.status_code == 403 and "KB_WRITE_TOKEN" in r.get_data(as_text=True)


def test_insights_page_after_signing_in(logged_app):
    client = logged_app.test_client()
    client.get("/search", query_string={"q": '<b>太字</b> ドローン'})
    client.get("/admin")  # the session's CSRF token is made here
    with client.session_transaction() as session:
        csrf = session.get("csrf", "")
    r = client.post("/admin/login", data={"token": TOKEN, "next": "/admin/insights",
                                          "csrf_token": csrf})
    assert r.status_code in (302, 303)
    page = client.get("/admin/insights")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "0件だった検索語" in html
    assert "&lt;b&gt;太字&lt;/b&gt; ドローン" in html and "<b>太字" not in html
    assert client.get("/admin/insights", query_string={"days": "0"}).status_code == 400
