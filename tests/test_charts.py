"""The tile map and the fiscal-year bar chart (kb/charts.py), in the results page and the API."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import pytest

from kb.charts import GRID_COLS, GRID_ROWS, SHADES, TILES, chart_data, shade, tile_map_svg, \
    year_chart_svg
from kb.corpus import PREFECTURES

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert(1)</script>"&'


def href(name, value):
    return f"/search?q=x&{name}={value}"


FACETS = {
    "prefecture": [
        {"value": "静岡県", "label": "静岡県", "count": 4, "selected": False},
        {"value": "千葉県", "label": "千葉県", "count": 1, "selected": True},
        {"value": "全国", "label": "全国", "count": 2, "selected": False},
    ],
    "category": [],
    "year": [
        {"value": 2023, "label": "2023年度（令和5年度）", "count": 3, "selected": False},
        {"value": 2020, "label": "2020年度（令和2年度）", "count": 1, "selected": True},
    ],
}


def test_tiles_cover_47_prefectures_without_overlap():
    assert set(TILES) == set(PREFECTURES) and len(TILES) == 47
    assert len(set(TILES.values())) == 47
    assert all(0 <= c < GRID_COLS and 0 <= r < GRID_ROWS for c, r in TILES.values())


def test_chart_data_counts_every_prefecture_and_fills_year_gaps():
    data = chart_data(FACETS)
    assert [p["name"] for p in data["prefectures"]] == list(PREFECTURES)
    counts = {p["name"]: p["count"] for p in data["prefectures"]}
    assert counts["静岡県"] == 4 and counts["千葉県"] == 1 and counts["東京都"] == 0
    assert data["nationwide"]["count"] == 2
    assert [(y["year"], y["count"]) for y in data["years"]] == [
        (2020, 1), (2021, 0), (2022, 0), (2023, 3)]
    assert data["years"][0]["selected"] and data["years"][-1]["era"] == "令和5年度"


@pytest.mark.parametrize("count,top,step",
                         [(0, 5, 0), (1, 5, 1), (5, 5, 5), (3, 5, 3), (1, 100, 1)])
def test_shade_steps(count, top, step):
    assert shade(count, top) == step


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # raises on anything not well-formed


def test_tile_map_is_accessible_well_formed_svg_with_links():
    root = parse(tile_map_svg(chart_data(FACETS), href))
    assert root.get("role") == "img"
    ids = root.get("aria-labelledby").split()
    assert root.find(f"{SVG}title").get("id") == ids[0]
    desc = root.find(f"{SVG}desc").text
    assert "静岡県 4件" in desc and "千葉県 1件" in desc and "全国対象の記事 2件" in desc
    links = {a.get("data-prefecture"): a for a in root.iter(f"{SVG}a")}
    assert set(links) == {"静岡県", "千葉県", "全国"}  # prefectures with no case have no link
    assert links["静岡県"].get("href") == "/search?q=x&prefecture=静岡県"
    assert "selected" in links["千葉県"].get("class")
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "静岡" in texts and "4" in texts and "北海道" in texts and "鹿児島" in texts
    rect_fills = {r.get("fill") for r in root.iter(f"{SVG}rect")}
    assert SHADES[-1] in rect_fills  # the largest count has the darkest shade


def test_year_chart_is_accessible_well_formed_svg_with_links():
    root = parse(year_chart_svg(chart_data(FACETS), href))
    assert root.get("role") == "img" and root.find(f"{SVG}title").text
    assert "2023年度 3件" in root.find(f"{SVG}desc").text
    links = {a.get("data-year"): a for a in root.iter(f"{SVG}a")}
    assert set(links) == {"2020", "2023"}  # the empty years in between are drawn, not linked
    assert links["2023"].get("href") == "/search?q=x&year=2023"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert {"2020", "2021", "2022", "2023", "3"} <= set(texts)
    assert " 令和5" in [t.text for t in root.iter(f"{SVG}tspan")]
    assert texts.index("2023") < texts.index("2020")  # newest on top


def test_no_years_no_chart():
    assert year_chart_svg(chart_data({"prefecture": [], "year": []}), href) == ""


def test_text_and_links_are_escaped():
    facets = {"prefecture": [{"value": "静岡県", "label": "静岡県", "count": 1, "selected": False}],
              "year": [{"value": 2023, "label": "", "count": 1, "selected": False}]}
    for svg in (tile_map_svg(chart_data(facets), lambda n, v: f"/search?q={HOSTILE}"),
                year_chart_svg(chart_data(facets), lambda n, v: f"/search?q={HOSTILE}")):
        assert "<script>" not in svg
        parse(svg)


# --- in the page and the API ---------------------------------------------------------------


def test_results_page_has_both_charts_linking_to_filters(client):
    html = client.get("/search", query_string={"q": "委託"}).get_data(as_text=True)
    assert 'class="chart tilemap"' in html and 'class="chart yearbars"' in html
    start = html.index("<svg", html.index('class="chart-map"'))
    root = parse(html[start:html.index("</svg>", start) + 6])
    link = next(a for a in root.iter(f"{SVG}a") if a.get("data-prefecture"))
    query = parse_qs(urlsplit(link.get("href")).query)
    assert query["q"] == ["委託"] and query["prefecture"] == [link.get("data-prefecture")]


def test_api_search_has_the_chart_counts(client):
    data = client.get("/api/search", query_string={"q": "委託"}).get_json()
    charts = data["charts"]
    assert len(charts["prefectures"]) == 47
    by_facet = {f["value"]: f["count"] for f in data["facets"]["prefecture"]}
    for p in charts["prefectures"]:
        assert p["count"] == by_facet.get(p["name"], 0)
    years = {y["year"]: y["count"] for y in charts["years"]}
    for f in data["facets"]["year"]:
        assert years[f["value"]] == f["count"]


def test_no_charts_without_results(client):
    r = client.get("/search", query_string={"q": "窓口", "prefecture": "沖縄県"})
    html = r.get_data(as_text=True)
    assert "chart tilemap" not in html


def _luminance(hex_color: str) -> float:
    rgb = [int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_tile_text_contrast_passes_wcag_aa():
    from kb.charts import EMPTY_FILL, EMPTY_TEXT, LIGHT_TEXT, TEXT

    assert _contrast(EMPTY_TEXT, EMPTY_FILL) >= 4.5
    for step, fill in enumerate(SHADES, 1):
        ink = LIGHT_TEXT if step >= 4 else TEXT
        assert _contrast(ink, fill) >= 4.5, fill
