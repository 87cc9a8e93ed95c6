"""Exports of a result set (kb/export.py): /search.csv and /search.json."""
from __future__ import annotations

import csv
import io
from urllib.parse import unquote

import pytest

from kb.export import BOM, COLUMNS, download_name, export_rows, guard_cell, to_csv
from web import create_app


@pytest.mark.parametrize("value,expected", [
    ("=1+2", "'=1+2"), ("+81-3", "'+81-3"), ("-10", "'-10"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=x", "'\t=x"), ("\r=x", "'\r=x"),
    ("窓口", "窓口"), ("2023-04-01", "2023-04-01"), ("a=b", "a=b"), (None, ""), (3, "3"),
])
def test_guard_cell(value, expected):
    assert guard_cell(value) == expected


def test_csv_is_excel_ready():
    rows = export_rows([{"id": "a", "title": '=HYPERLINK("http://x")',
                         "categories": ["窓口業務", "税"], "snippet": 'two\nlines, "quoted"',
                         "year": 2023, "score": 1.5}],
                       link=lambda i: f"http://kb/articles/{i}")
    text = to_csv(rows)
    assert text.startswith(BOM)
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "").replace("two\nlines", "")
    table = list(csv.reader(io.StringIO(text[len(BOM):], newline="")))
    assert table[0] == [header for _, header in COLUMNS]
    assert table[0][:3] == ["順位", "タイトル", "都道府県"]
    row = dict(zip(table[0], table[1]))
    assert row["タイトル"] == "'=HYPERLINK(\"http://x\")"
    assert row["カテゴリ"] == "窓口業務、税"
    assert row["抜粋"] == 'two\nlines, "quoted"'
    assert row["年度"] == "2023年度" and row["記事のURL"] == "http://kb/articles/a"


def test_download_name_has_no_path_characters():
    name = download_name('../../etc/passwd "x"\n窓口', "csv", "2024-05-01")
    assert "/" not in name and '"' not in name and "\n" not in name
    assert name.startswith("検索結果_") and name.endswith("_2024-05-01.csv")


def read_csv(response) -> list[list[str]]:
    raw = response.get_data()
    assert raw.startswith(BOM.encode("utf-8"))
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def test_search_csv_has_every_result_with_filters(client):
    api = client.get("/api/search", query_string={"q": "委託", "per_page": 100}).get_json()
    r = client.get("/search.csv", query_string={"q": "委託", "page": 1, "per_page": 2})
    assert r.status_code == 200
    assert r.mimetype == "text/csv" and r.mimetype_params["charset"] == "utf-8"
    disposition = r.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and "検索結果_委託_" in unquote(disposition)
    table = read_csv(r)
    assert table[0][0] == "順位" and len(table) - 1 == api["total"]  # not just one page
    assert [row[10] for row in table[1:]] == [h["id"] for h in api["hits"]]
    assert r.headers["X-Total-Count"] == str(api["total"])

    pref = api["facets"]["prefecture"][0]
    filtered = read_csv(client.get("/search.csv", query_string={
        "q": "委託", "prefecture": pref["value"], "sort": "date"}))
    assert len(filtered) - 1 == pref["count"]
    assert all(row[2] == pref["value"] for row in filtered[1:])
    dates = [row[4] for row in filtered[1:]]
    assert dates == sorted(dates, reverse=True)


def test_export_is_capped(index_dir, tmp_path):
    app = create_app({"INDEX_DIR": str(index_dir), "TESTING": True, "EXPORT_MAX": 2,
                      "SEARCH_LOG": "off"})
    client = app.test_client()
    r = client.get("/search.csv", query_string={"q": "委託"})
    assert len(read_csv(r)) - 1 == 2
    assert r.headers["X-Export-Truncated"] == "true"
    data = client.get("/search.json", query_string={"q": "委託"}).get_json()
    assert data["exported"] == 2 and data["limit"] == 2 and data["truncated"] is True
    assert data["total"] > 2


def test_search_json_export(client):
    r = client.get("/search.json", query_string={"q": "窓口"})
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.headers["Content-Disposition"].startswith("attachment;")
    data = r.get_json()
    assert data["ok"] is True and data["exported"] == data["total"] == len(data["hits"])
    hit = data["hits"][0]
    assert hit["link"].endswith(f"/articles/{hit['id']}") and "snippet_html" not in hit


def test_export_errors(client):
    r = client.get("/search.json", query_string={"q": ""})
    assert r.status_code == 400 and r.get_json()["ok"] is False
    r = client.get("/search.csv", query_string={"q": "あ" * 1001})
    assert r.status_code == 400 and "文字以内" in r.get_data(as_text=True)


def test_results_page_links_to_exports_with_the_same_filters(client):
    html = client.get("/search", query_string={"q": "委託", "prefecture": "静岡県", "page": 1}
                      ).get_data(as_text=True)
    assert "/search.csv?q=%E5%A7%94%E8%A8%97&amp;prefecture=%E9%9D%99%E5%B2%A1%E7%9C%8C" in html
    assert "/search.json?q=" in html and "page=1" not in html.split("/search.csv")[1][:80]
