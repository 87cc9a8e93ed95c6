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


# --- years inside a query: 令和5年度 also finds 2023年度 and the other way round -----

ERA_END = {"令和": None, "平成": 1989 + 31 - 1, "昭和": 1926 + 64 - 1}
YEAR_SUFFIXES = ("年度", "年")


def _year_at(terms: list[str], i: int) -> tuple[int, int] | None:
    """Return (year, length in terms) of a year expression starting at terms[i]."""
    t = terms[i]
    era = t if t in ERAS else _ERA_LETTERS.get(t)
    if era and i + 2 < len(terms) and terms[i + 2] in YEAR_SUFFIXES:
        n = terms[i + 1]
        if n == "元" or (n.isdigit() and n.isascii() and 0 < int(n) < 100):
            return era_to_year(era, n), 3
    if (len(t) == 4 and t.isdigit() and t.isascii() and 1900 <= int(t) <= 2200
            and i + 1 < len(terms) and terms[i + 1] in YEAR_SUFFIXES):
        return int(t), 2
    return None


def year_spellings(year: int, suffix: str = "年度") -> list[tuple[str, ...]]:
    """Return the terms a year is written as: (2023, 年度), (令和, 5, 年度); 2019 has 令和元 and 平成31."""
    out = [(str(year), suffix)]
    for era, base in sorted(ERAS.items(), key=lambda kv: -kv[1]):
        end = ERA_END[era]
        if base <= year and (end is None or year <= end):
            n = year - base + 1
            out.append((era, str(n), suffix))
            if n == 1:
                out.append((era, "元", suffix))
    return out


def year_matches(terms: list[str]) -> list[tuple[int, int, int, list[tuple[str, ...]]]]:
    """Find year expressions among a query's terms: (start, end, year, other spellings)."""
    out = []
    i = 0
    while i < len(terms):
        found = _year_at(terms, i)
        if not found:
            i += 1
            continue
        year, length = found
        typed = tuple(terms[i:i + length])
        others = [s for s in year_spellings(year, typed[-1]) if s != typed]
        out.append((i, i + length, year, others))
        i += length
    return out
