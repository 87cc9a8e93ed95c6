"""Pages that work anywhere (web/ui.py and the templates): local assets, labels, shareable URLs."""
from __future__ import annotations

import re

import pytest

PAGES = ["/", "/search?q=委託", "/search?q=委託&prefecture=静岡県&sort=date&page=1",
         "/articles/kakegawa-castle-shitei-kanri", "/api", "/related"]
ASSET = re.compile(r'<(?:script|link|img|iframe|source)\b[^>]*?(?:src|href)="([^"]+)"', re.I)


@pytest.mark.parametrize("url", PAGES)
def test_every_asset_is_served_by_the_app(client, url):
    r = client.get(url)
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assets = ASSET.findall(html)
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    assert "@import" not in html and "fonts.googleapis" not in html
    for asset in assets:
        with client.get(asset) as response:  # static files are streamed: close them
            assert response.status_code == 200, asset


@pytest.mark.parametrize("url", PAGES)
def test_pages_are_japanese_responsive_and_labelled(client, url):
    html = client.get(url).get_data(as_text=True)
    assert '<html lang="ja">' in html
    assert 'name="viewport" content="width=device-width, initial-scale=1"' in html
    assert '<label for="q"' in html and 'href="#main"' in html
    for field in re.findall(r'<(?:input|textarea|select)\b[^>]*\bid="([^"]+)"', html):
        assert f'for="{field}"' in html, field


def test_static_files_have_no_outside_references(client):
    for name in ("suggest.js", "clicklog.js", "ui.css", "style.css"):
        with client.get(f"/static/{name}") as response:
            text = response.get_data(as_text=True)
        assert "http://" not in text and "https://" not in text, name


def test_results_page_state_is_all_in_the_url(client):
    html = client.get("/search", query_string={"q": "委託", "prefecture": "静岡県",
                                                "sort": "date"}).get_data(as_text=True)
    # paging, sorting, chart and facet links keep the query and the filters
    links = re.findall(r'href="(/search\?[^"]+)"', html)
    assert links and all("q=%E5%A7%94%E8%A8%97" in link for link in links)
    assert "件（" in html and "ミリ秒" in html  # result count and query time


def test_result_page_hands_the_search_id_to_the_click_beacon(client):
    html = client.get("/search", query_string={"q": "委託"}).get_data(as_text=True)
    assert re.search(r'data-search-log="[0-9a-f]{16}"', html)
    assert 'data-click-url="/api/click"' in html
    assert 'data-suggest-url="/api/suggest"' in html


def test_hostile_query_is_escaped_in_the_tools(client):
    hostile = '"><script>alert(1)</script>'
    html = client.get("/search", query_string={"q": f"委託 {hostile}"}).get_data(as_text=True)
    assert "<script>alert(1)" not in html
