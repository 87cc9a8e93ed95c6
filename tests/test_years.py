"""kb.years: fiscal years (April to March) and Japanese eras."""
from __future__ import annotations

import datetime as dt

import pytest

from kb.years import (era_to_year, fiscal_year, parse_year, year_label, year_matches,
                      year_spellings, year_to_era)


@pytest.mark.parametrize("day, year", [
    (dt.date(2023, 4, 1), 2023),  # the first day of fiscal 2023
    (dt.date(2024, 3, 31), 2023),  # the last day of fiscal 2023
    (dt.date(2024, 1, 10), 2023),
    (dt.date(2023, 3, 31), 2022),
    (dt.date(2023, 12, 31), 2023),
])
def test_fiscal_year_runs_april_to_march(day, year):
    assert fiscal_year(day) == year


@pytest.mark.parametrize("text, year", [
    ("2023", 2023),
    ("2023年度", 2023),
    ("2023年", 2023),
    ("FY2023", 2023),
    ("fy2023", 2023),
    ("２０２３年度", 2023),  # full-width digits
    ("令和5年度", 2023),
    ("令和５年度", 2023),
    ("令和5", 2023),
    ("令和 5年度", 2023),
    ("R5", 2023),
    ("r5", 2023),
    ("R05", 2023),
    ("令和元年度", 2019),
    ("平成31年度", 2019),
    ("H30", 2018),
    ("平成元年", 1989),
    ("昭和64年", 1989),
    ("S50", 1975),
    ("  2023年度  ", 2023),
])
def test_parse_year_reads_the_usual_ways_of_writing_a_year(text, year):
    assert parse_year(text) == year


@pytest.mark.parametrize("text", [
    "", None, "abc", "令和", "2023年4月", "20230", "23", "大正5年", "1899", "2201", "年度",
    "令和5年度から",
])
def test_parse_year_returns_none_for_anything_else(text):
    assert parse_year(text) is None


@pytest.mark.parametrize("year, era", [
    (2023, "令和5"), (2019, "令和元"), (2018, "平成30"), (1989, "平成元"), (1988, "昭和63"),
])
def test_year_to_era(year, era):
    assert year_to_era(year) == era


def test_era_to_year():
    assert era_to_year("令和", "5") == 2023
    assert era_to_year("令和", "元") == 2019
    assert era_to_year("平成", "３１") == 2019


@pytest.mark.parametrize("year, label", [
    (2023, "2023年度（令和5年度）"),
    (2019, "2019年度（令和元年度）"),
    (2018, "2018年度（平成30年度）"),
])
def test_year_label(year, label):
    assert year_label(year) == label


def test_labels_read_back_as_the_same_year():
    for year in range(1990, 2031):
        gregorian, era = year_label(year).rstrip("）").split("（")
        assert parse_year(gregorian) == parse_year(era) == year


# --- years inside a query ----------------------------------------------------------------


@pytest.mark.parametrize("terms, found", [
    (["令和", "5", "年度"], [(0, 3, 2023, [("2023", "年度")])]),
    (["2023", "年度", "委託"], [(0, 2, 2023, [("令和", "5", "年度")])]),
    (["r", "5", "年"], [(0, 3, 2023, [("2023", "年"), ("令和", "5", "年")])]),
    (["窓口", "平成", "元", "年"], [(1, 4, 1989, [("1989", "年"), ("平成", "1", "年"),
                                               ("昭和", "64", "年")])]),
    (["2023", "件"], []),  # a number, not a year
    (["令和", "年度"], []),
    (["1800", "年"], []),
])
def test_year_matches(terms, found):
    assert year_matches(terms) == found


def test_2019_is_both_reiwa_1_and_heisei_31():
    assert year_spellings(2019) == [("2019", "年度"), ("令和", "1", "年度"), ("令和", "元", "年度"),
                                    ("平成", "31", "年度")]
