"""The product in a real browser: Debian's headless Chromium driven by Playwright over `kb serve`.

Skipped, with the reason, where Chromium or Playwright is missing (`make test` installs
Chromium as root). Screenshots of the main pages land in tests/artifacts/.
"""
from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

import browser as kb_browser
from browser import LIVE_WRITE_TOKEN


def params(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


@pytest.fixture()
def page(browser_page, live_server):
    """A page that fails the test if anything is fetched from outside the server."""
    outside: list[str] = []
    browser_page.on("request", lambda r: outside.append(r.url)
                    if not r.url.startswith((live_server.url, "data:")) else None)
    errors: list[str] = []
    browser_page.on("pageerror", lambda e: errors.append(str(e)))
    yield browser_page
    assert outside == [], "every asset must be served locally"
    assert errors == [], "no script errors"


def search_from_home(page, live_server, q: str) -> None:
    page.goto(live_server.url + "/")
    page.get_by_label("検索語").fill(q)
    page.get_by_label("検索語").press("Enter")
    page.wait_for_url(re.compile(r"/search\?"))


def test_search_facet_paging_and_sort(page, live_server):
    search_from_home(page, live_server, "委託")
    summary = page.locator("p.summary")
    assert "「委託」の検索結果" in summary.inner_text() and "ミリ秒" in summary.inner_text()
    total = int(summary.locator("strong").inner_text())
    assert total >= 3 and page.locator("ol.hits > li").count() == min(total, 10)
    kb_browser.screenshot(page, "search")

    # facet filter: the first prefecture in the list
    link = page.locator("aside.facets section").first.locator("a").first
    name = link.inner_text()
    link.click()
    page.wait_for_url(re.compile("prefecture="))
    assert params(page.url)["prefecture"] == [name] and params(page.url)["q"] == ["委託"]
    for meta in page.locator("ol.hits .meta").all_inner_texts():
        assert name in meta

    # paging: two per page, next and back
    page.goto(f"{live_server.url}/search?q=委託&per_page=2")
    first_page = page.locator("ol.hits h2 a").all_inner_texts()
    page.get_by_role("link", name="次へ").click()
    page.wait_for_url(lambda url: params(url).get("page") == ["2"])
    assert page.locator("ol.hits").get_attribute("start") == "3"
    assert set(page.locator("ol.hits h2 a").all_inner_texts()).isdisjoint(first_page)
    page.get_by_role("link", name="前へ").click()
    page.wait_for_url(lambda url: params(url).get("page", ["1"]) == ["1"])
    assert page.locator("ol.hits h2 a").all_inner_texts() == first_page

    # sort: newest first
    page.get_by_role("link", name="新しい順").click()
    page.wait_for_url(re.compile("sort=date"))
    metas = " ".join(page.locator("ol.hits .meta").all_inner_texts())
    dates = re.findall(r"\d{4}-\d{2}-\d{2}", metas)
    assert dates == sorted(dates, reverse=True)


def test_suggestions_with_the_keyboard(page, live_server):
    page.goto(live_server.url + "/")
    box = page.get_by_role("combobox", name="検索語")
    box.press_sequentially("かけ", delay=30)
    listbox = page.get_by_role("listbox", name="検索候補")
    listbox.wait_for()
    assert box.get_attribute("aria-expanded") == "true"
    options = listbox.get_by_role("option")
    labels = [t.split("\n")[0] for t in options.all_inner_texts()]
    assert "掛川市" in labels
    kb_browser.screenshot(page, "suggest")

    box.press("ArrowDown")
    active = box.get_attribute("aria-activedescendant")
    assert active and page.locator(f"#{active}").get_attribute("aria-selected") == "true"
    for _ in range(labels.index("掛川市")):
        box.press("ArrowDown")
    chosen = page.locator(f"#{box.get_attribute('aria-activedescendant')}")
    assert chosen.inner_text().startswith("掛川市")
    box.press("Escape")
    assert box.get_attribute("aria-expanded") == "false" and listbox.is_hidden()
    box.press("ArrowDown")  # opens again, on the first option
    listbox.wait_for()
    for _ in range(labels.index("掛川市")):
        box.press("ArrowDown")
    box.press("Enter")
    page.wait_for_url(re.compile(r"/search\?q="))
    assert params(page.url)["q"] == ["掛川市"]
    assert "掛川" in page.locator("ol.hits").inner_text()


def test_map_and_year_chart_filter_the_results(page, live_server):
    page.goto(f"{live_server.url}/search?q=指定管理")
    tile = page.locator('svg.tilemap a[data-prefecture="静岡県"]')
    assert "静岡県: 2件" in tile.locator("title").first.text_content()
    tile.click()
    page.wait_for_url(re.compile("prefecture="))
    assert params(page.url)["prefecture"] == ["静岡県"]
    metas = page.locator("ol.hits .meta").all_inner_texts()
    assert len(metas) == 2 and all("静岡県" in m for m in metas)
    assert "selected" in tile.get_attribute("class")
    kb_browser.screenshot(page, "search-map-filtered")

    bar = page.locator("svg.yearbars a[data-year]").first
    year = bar.get_attribute("data-year")
    bar.click()
    page.wait_for_url(re.compile("year="))
    assert params(page.url)["year"] == [year] and params(page.url)["prefecture"] == ["静岡県"]
    assert page.locator("a.chip", has_text=f"{year}年度").count() == 1


def test_csv_export_download(page, live_server):
    page.goto(f"{live_server.url}/search?q=窓口&sort=date")
    total = int(page.locator("p.summary strong").inner_text())
    with page.expect_download() as info:
        page.get_by_role("link", name="CSV（Excel用）").click()
    download = info.value
    assert download.suggested_filename.endswith(".csv") and "窓口" in download.suggested_filename
    raw = Path(download.path()).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert table[0][:4] == ["順位", "タイトル", "都道府県", "市区町村"]
    assert len(table) - 1 == total


def test_article_page_related_cases_and_click_log(page, live_server):
    page.goto(f"{live_server.url}/search?q=指定管理")
    first = page.locator("ol.hits h2 a").first
    title = first.inner_text()
    first.click()
    page.wait_for_url(re.compile("/articles/"))
    assert page.get_by_role("heading", level=1).inner_text() == title
    related = page.locator("section.related")
    assert related.get_by_role("heading", name="関連事例").is_visible()
    assert related.locator("ol.related-list a").count() >= 1
    kb_browser.screenshot(page, "article")

    # the click reached the search log (a beacon: give it a moment)
    auth = {"Authorization": f"Bearer {LIVE_WRITE_TOKEN}"}
    for _ in range(50):
        if live_server.get_json("/api/admin/insights", auth)["clicked_searches"] >= 1:
            break
        time.sleep(0.1)
    data = live_server.get_json("/api/admin/insights", auth)
    assert data["clicked_searches"] >= 1
    assert any(r["query"] == "指定管理" and r["clicks"] >= 1 for r in data["popular"])


def test_asking_a_question(page, live_server):
    page.goto(live_server.url + "/")
    ask = page.locator("form[action*='ask']")
    if ask.count() == 0:
        pytest.skip("this build has no question box (/ask)")
    ask.first.locator("input[name=q], textarea[name=q]").first.fill(
        "白井市では来庁者の待ち時間がどれだけ短くなった？")
    ask.first.locator("button[type=submit], input[type=submit]").first.click()
    page.wait_for_url(re.compile(r"/ask\?"))
    main = page.locator("main").inner_text()
    assert "エラー" not in page.get_by_role("heading", level=1).first.inner_text()
    assert "白井" in main
    kb_browser.screenshot(page, "ask")


def test_insights_page_for_editors(page, live_server):
    page.goto(f"{live_server.url}/search?q=ドローン点検の委託事例&prefecture=沖縄県")
    page.goto(f"{live_server.url}/admin/insights")
    page.wait_for_url(re.compile("/admin"))
    page.get_by_label("トークン").fill(LIVE_WRITE_TOKEN)
    page.get_by_label("トークン").press("Enter")
    page.wait_for_url(re.compile("/admin/insights"))
    main = page.locator("main").inner_text()
    assert "0件だった検索語" in main and "ドローン点検の委託事例" in main
    kb_browser.screenshot(page, "insights")


def test_home_and_api_pages(page, live_server):
    page.goto(live_server.url + "/")
    assert page.get_by_role("search").is_visible()
    kb_browser.screenshot(page, "home")
    page.get_by_role("link", name="API の説明").click()
    page.wait_for_url(re.compile("/api$"))
    assert page.get_by_role("heading", level=1).inner_text() == "API の説明"
    kb_browser.screenshot(page, "api")


@pytest.mark.parametrize("width,name", [(375, "phone"), (640, "zoom-200")])
def test_narrow_screens_do_not_scroll_sideways(browser, live_server, width, name):
    # 640 CSS pixels is a 1280-pixel window at 200% zoom
    context, page = kb_browser.new_page(browser, viewport={"width": width, "height": 800})
    try:
        page.goto(f"{live_server.url}/search?q=委託")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1
        box = page.get_by_role("combobox", name="検索語").bounding_box()
        assert box["width"] >= 150 and box["x"] + box["width"] <= width
        kb_browser.screenshot(page, f"search-{name}")
    finally:
        context.close()


def test_keyboard_focus_order_starts_with_skip_link(page, live_server):
    page.goto(f"{live_server.url}/search?q=委託")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "本文へ移動"
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "q"
