"""Japanese eras and fiscal years (年度): 令和5年度 and 2023年度 are the same year."""
from __future__ import annotations

import datetime as dt
import re
import unicodedata

# First Gregorian year of each era (元年): year = base + n - 1.
ERAS = {"令和": 2019, "平成": 1989, "昭和": 1926}
_ERA_LETTERS = {"r": "令和", "h": "平成", "s": "昭和"}
_YEAR_RE = re.compile(
    r"^(?:fy)?(?:(?P<g>\d{4})|(?P<era>令和|平成|昭和|[rhs])\s*(?P<n>\d{1,2}|元))"
    r"(?:年度|年)?$", re.I)
# Era years inside running text, for query expansion: 令和5年度 -> 2023年度.
ERA_IN_TEXT = re.compile(r"(令和|平成|昭和)\s*([0-9０-９]{1,2}|元)\s*(年度|年)")
GREGORIAN_IN_TEXT = re.compile(r"((?:19|20)[0-9]{2})\s*(年度|年)")


def fiscal_year(day: dt.date) -> int:
    """Return the Japanese fiscal year (April to March) a date falls in."""
    return day.year if day.month >= 4 else day.year - 1


def era_to_year(era: str, number: str) -> int:
    """Return the Gregorian year of an era year (令和, '5' -> 2023; 元 = 1)."""
    n = 1 if number == "元" else int(unicodedata.normalize("NFKC", number))
    return ERAS[era] + n - 1


def year_to_era(year: int) -> str:
    """Return the era name of a Gregorian year (2023 -> 令和5, 2019 -> 令和元)."""
    for era, base in sorted(ERAS.items(), key=lambda kv: -kv[1]):
        if year >= base:
            n = year - base + 1
            return f"{era}{'元' if n == 1 else n}"
    return str(year)


def parse_year(value: str) -> int | None:
    """Read a year filter: 2023, 2023年度, FY2023, 令和5年度, R5 -> 2023; else None."""
    text = unicodedata.normalize("NFKC", value or "").strip()
    m = _YEAR_RE.match(text)
    if not m:
        return None
    if m.group("g"):
        year = int(m.group("g"))
    else:
        era = m.group("era")
        era = _ERA_LETTERS.get(era.lower(), era)
        year = era_to_year(era, m.group("n"))
    return year if 1900 <= year <= 2200 else None


def year_label(year: int) -> str:
    """Label a fiscal year for people: 2023年度（令和5年度）."""
    return f"{year}年度（{year_to_era(year)}年度）"
