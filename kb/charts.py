"""Pictures of a result set: a tile map of the 47 prefectures and a bar chart of fiscal years.

`chart_data` turns a search's facets into the counts both pictures show (also served
in the JSON API); `tile_map_svg` and `year_chart_svg` draw them as self-contained SVG
with a <title>, a <desc> listing every count in words, a text label on every tile and
bar, and a link on each that filters the search. Every piece of text is escaped here.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from html import escape

from .corpus import NATIONWIDE, PREFECTURES
from .years import year_to_era

# (column, row) of each prefecture on a 13 x 12 grid, north-east to south-west.
TILES: dict[str, tuple[int, int]] = {
    "北海道": (12, 0), "青森県": (12, 1), "秋田県": (11, 2), "岩手県": (12, 2),
    "山形県": (11, 3), "宮城県": (12, 3),
    "石川県": (9, 4), "富山県": (10, 4), "新潟県": (11, 4), "福島県": (12, 4),
    "福井県": (8, 5), "岐阜県": (9, 5), "長野県": (10, 5), "群馬県": (11, 5), "栃木県": (12, 5),
    "島根県": (4, 6), "鳥取県": (5, 6), "兵庫県": (6, 6), "京都府": (7, 6), "滋賀県": (8, 6),
    "愛知県": (9, 6), "山梨県": (10, 6), "埼玉県": (11, 6), "茨城県": (12, 6),
    "山口県": (3, 7), "広島県": (4, 7), "岡山県": (5, 7), "大阪府": (6, 7), "奈良県": (7, 7),
    "三重県": (8, 7), "静岡県": (9, 7), "神奈川県": (10, 7), "東京都": (11, 7), "千葉県": (12, 7),
    "佐賀県": (1, 8), "福岡県": (2, 8), "愛媛県": (4, 8), "香川県": (5, 8), "和歌山県": (7, 8),
    "長崎県": (0, 9), "熊本県": (1, 9), "大分県": (2, 9), "高知県": (4, 9), "徳島県": (5, 9),
    "鹿児島県": (1, 10), "宮崎県": (2, 10),
    "沖縄県": (0, 11),
}
GRID_COLS, GRID_ROWS = 13, 12
TILE, GAP = 44, 4
# Light to dark; text on the last two is white. Every pair passes WCAG AA (4.5:1).
SHADES = ("#deebf7", "#b3d3ec", "#6baed6", "#2166ac", "#08306b")
EMPTY_FILL, EMPTY_TEXT, TEXT, LIGHT_TEXT = "#f3f5f7", "#4a5562", "#1b1f24", "#ffffff"
SELECTED_STROKE = "#b35900"
MAX_YEARS = 30  # the bar chart shows at most this many of the latest fiscal years
ROW_H = 26  # height of one fiscal year's bar row

Href = Callable[[str, object], str]


def short_name(prefecture: str) -> str:
    """静岡県 -> 静岡, 東京都 -> 東京; 北海道 stays whole."""
    if prefecture == "北海道":
        return prefecture
    return prefecture[:-1] if prefecture[-1:] in "都府県" else prefecture


def shade(count: int, top: int) -> int:
    """Return the shade step (0 = none, 1..5) of a count against the largest count."""
    if count <= 0 or top <= 0:
        return 0
    return max(1, min(len(SHADES), math.ceil(count / top * len(SHADES))))


def chart_data(facets: dict) -> dict:
    """Return the counts the map and the bar chart show, from a search's facets."""
    by_pref = {f["value"]: f for f in facets.get("prefecture", [])}
    prefectures = [{"name": p, "count": by_pref.get(p, {}).get("count", 0),
                    "selected": bool(by_pref.get(p, {}).get("selected"))} for p in PREFECTURES]
    nationwide = by_pref.get(NATIONWIDE, {})
    counted = {f["value"]: f for f in facets.get("year", [])}
    years = []
    if counted:
        last = max(counted)
        first = max(min(counted), last - MAX_YEARS + 1)
        for y in range(first, last + 1):
            f = counted.get(y, {})
            years.append({"year": y, "label": f"{y}年度", "era": f"{year_to_era(y)}年度",
                          "count": f.get("count", 0), "selected": bool(f.get("selected"))})
    return {
        "prefectures": prefectures,
        "nationwide": {"name": NATIONWIDE, "count": nationwide.get("count", 0),
                       "selected": bool(nationwide.get("selected"))},
        "years": years,
        "years_left_out": sum(f["count"] for y, f in counted.items()
                              if years and y < years[0]["year"]),
    }


def _attrs(**attrs) -> str:
    """class_="x", aria_label="y" -> ' class="x" aria-label="y"' (None drops one; all escaped)."""
    return "".join(f' {k.rstrip("_").replace("_", "-")}="{escape(str(v), quote=True)}"'
                   for k, v in attrs.items() if v is not None)


def _el(tag: str, *children: str, text: object = None, **attrs) -> str:
    """One SVG element: escaped text or already-built children inside, escaped attributes."""
    inner = escape(str(text)) if text is not None else "".join(children)
    if not inner and tag in ("rect", "line"):
        return f"<{tag}{_attrs(**attrs)}/>"
    return f"<{tag}{_attrs(**attrs)}>{inner}</{tag}>"


def _svg(ident: str, width: float, height: float, css: str, title: str, said: str) -> str:
    """The opening of a chart: role="img" named by its <title> and described by its <desc>."""
    head = _attrs(viewBox=f"0 0 {width} {height}", class_=f"chart {css}", role="img",
                  aria_labelledby=f"{ident}-title {ident}-desc")
    return (f'<svg xmlns="http://www.w3.org/2000/svg"{head}>'
            + _el("title", text=title, id=f"{ident}-title")
            + _el("desc", text=f"{said}。", id=f"{ident}-desc"))


def _link_or_group(url: str | None, tip: str, body: str, css: str, **data) -> str:
    """A chart item: a link that filters (kept out of the tab order) or a plain group."""
    if url is None:
        return _el("g", _el("title", text=tip), body, class_=css)
    # keyboard users pick the same filters in the facet lists; role="img" hides these
    return _el("a", _el("title", text=tip), body, href=url, tabindex="-1", class_=css, **data)


def _tip(text: str, count: int, selected: bool) -> str:
    if selected:
        return f"{text}（絞り込みを解除）"
    return f"{text}（クリックで絞り込み）" if count else text


def tile_map_svg(data: dict, href: Href, ident: str = "kb-map") -> str:
    """Draw the prefecture tile map; each prefecture with cases links to its filter."""
    prefs = data["prefectures"]
    top = max((p["count"] for p in prefs), default=0)
    width = GRID_COLS * (TILE + GAP)
    legend_y = GRID_ROWS * (TILE + GAP) + 8
    said = "、".join(f"{p['name']} {p['count']}件" for p in prefs if p["count"])
    said = said or "該当する都道府県はありません"
    nationwide = data["nationwide"]
    if nationwide["count"]:
        said += f"。このほか全国対象の記事 {nationwide['count']}件"
    out = [_svg(ident, width, legend_y + 28, "tilemap", "都道府県別の該当件数（地図）", said)]
    for p in prefs:
        col, row = TILES[p["name"]]
        x, y = col * (TILE + GAP), row * (TILE + GAP)
        step = shade(p["count"], top)
        ink = LIGHT_TEXT if step >= 4 else (TEXT if step else EMPTY_TEXT)
        tile = _el("rect", x=x, y=y, width=TILE, height=TILE, rx=4,
                   fill=SHADES[step - 1] if step else EMPTY_FILL,
                   stroke=SELECTED_STROKE if p["selected"] else "#c3ccd6",
                   stroke_width=3 if p["selected"] else 1)
        tile += _el("text", text=short_name(p["name"]), x=x + TILE / 2, y=y + 19, fill=ink,
                    class_="name", text_anchor="middle")
        if p["count"]:
            tile += _el("text", text=p["count"], x=x + TILE / 2, y=y + 36, fill=ink,
                        class_="num", text_anchor="middle")
        linked = p["count"] or p["selected"]
        out.append(_link_or_group(
            href("prefecture", p["name"]) if linked else None,
            _tip(f'{p["name"]}: {p["count"]}件', p["count"], p["selected"]), tile,
            "tile selected" if p["selected"] else "tile", data_prefecture=p["name"]))
    # legend: none, then the shade steps from few to most
    legend = [_el("text", text="0件", x=0, y=legend_y + 14, class_="legend", fill=EMPTY_TEXT),
              _el("rect", x=34, y=legend_y + 2, width=18, height=16, fill=EMPTY_FILL,
                  stroke="#c3ccd6")]
    x = 60
    for fill in SHADES:
        legend.append(_el("rect", x=x, y=legend_y + 2, width=18, height=16, fill=fill))
        x += 20
    legend.append(_el("text", text=f"最多 {top}件", x=x + 6, y=legend_y + 14, class_="legend",
                      fill=EMPTY_TEXT))
    out.extend(legend)
    if nationwide["count"] or nationwide["selected"]:
        label = f'全国対象 {nationwide["count"]}件'
        out.append(_link_or_group(
            href("prefecture", NATIONWIDE), _tip(label, 1, nationwide["selected"]),
            _el("text", text=label, x=width, y=legend_y + 14, class_="legend link",
                fill="#0b5cad", text_anchor="end"),
            "tile nationwide" + (" selected" if nationwide["selected"] else ""),
            data_prefecture=NATIONWIDE))
    out.append("</svg>")
    return "".join(out)


def year_chart_svg(data: dict, href: Href, ident: str = "kb-years") -> str:
    """Draw the bar chart of cases per fiscal year, newest on top; each bar links to its filter.

    Bars run sideways so every year keeps a readable label, however narrow the column.
    """
    years = list(reversed(data["years"]))
    if not years:
        return ""
    top = max(y["count"] for y in years) or 1
    label_w, bar_max, num_w, pad = 112, 150, 40, 4
    width = label_w + bar_max + num_w
    height = pad * 2 + ROW_H * len(years)
    said = "、".join(f"{y['label']} {y['count']}件" for y in data["years"] if y["count"])
    out = [_svg(ident, width, height, "yearbars", "年度別の該当件数（棒グラフ）",
                said or "該当する年度はありません"),
           _el("line", x1=label_w, y1=pad, x2=label_w, y2=height - pad, stroke="#8a96a3")]
    for i, y in enumerate(years):
        top_y = pad + i * ROW_H
        mid = top_y + ROW_H / 2 + 5
        w = round(bar_max * y["count"] / top, 1)
        era = y["era"].replace("年度", "")
        row = _el("text", str(y["year"]), _el("tspan", text=f" {era}", class_="era",
                                                fill=EMPTY_TEXT),
                  x=label_w - 8, y=mid, class_="name", fill=TEXT, text_anchor="end")
        if y["count"]:
            row += _el("rect", x=label_w, y=top_y + 4, width=w, height=ROW_H - 8,
                       fill=SHADES[4] if y["selected"] else SHADES[3],
                       stroke=SELECTED_STROKE if y["selected"] else None,
                       stroke_width=3 if y["selected"] else None)
        row += _el("text", text=y["count"], x=label_w + w + 6, y=mid, class_="num", fill=TEXT)
        linked = y["count"] or y["selected"]
        if linked:
            # the whole row is the link: a short bar is as easy to hit as a long one
            row = _el("rect", x=0, y=top_y, width=width, height=ROW_H, fill="transparent") + row
        out.append(_link_or_group(
            href("year", y["year"]) if linked else None,
            _tip(f'{y["label"]}（{y["era"]}）: {y["count"]}件', y["count"], y["selected"]), row,
            "bar selected" if y["selected"] else "bar", data_year=y["year"]))
    out.append("</svg>")
    return "".join(out)
