"""kb.synonyms: the staff-edited synonym file, parsed, matched and re-read when it changes."""
from __future__ import annotations

import os
import time

import pytest

from kb.synonyms import load, parse


def texts(table, *terms):
    return [s.text for s in table.table.get(tuple(terms), [])]


def test_a_group_lets_every_word_find_the_others():
    table = parse("BPO, 業務委託, アウトソーシング\n")
    assert texts(table, "bpo") == ["業務委託", "アウトソーシング"]
    assert texts(table, "アウトソーシング") == ["BPO", "業務委託"]
    assert table.problems == []


@pytest.mark.parametrize("line", ["BPO、業務委託", "BPO，業務委託", "BPO ,業務委託 , ", "ＢＰＯ, 業務委託"])
def test_separators_and_spelling(line):
    assert texts(parse(line), "bpo") == ["業務委託"]


def test_comments_blank_lines_and_a_bom_are_ignored():
    table = parse("\ufeff# 見出し\n\n  # indented comment\nDX, デジタル化  # trailing comment\n")
    assert texts(table, "dx") == ["デジタル化"]
    assert len(table) == 2


@pytest.mark.parametrize("arrow", ["=>", "->", "→"])
def test_one_way_lines(arrow):
    table = parse(f"九州 {arrow} 福岡県, 佐賀県\n")
    assert texts(table, "九州") == ["福岡県", "佐賀県"]
    assert texts(table, "福岡県") == []


def test_words_are_analysed_like_a_query():
    table = parse("指定管理, 指定管理者制度\n")
    (synonym,) = table.table[("指定", "管理")]
    assert synonym.terms == ("指定", "管理者", "制度")
    assert synonym.parts == ((), ("管理", "者"), ())


def test_lines_that_cannot_be_read_are_reported_not_fatal():
    table = parse("BPO\n=> 福岡県\nA => B => C\nBPO, 業務委託\n", path="s.txt")
    assert texts(table, "bpo") == ["業務委託"]
    assert len(table.problems) == 3
    assert all(p.startswith("s.txt:") for p in table.problems)


def test_matches_take_the_longest_run_first():
    table = parse("指定管理, 公の施設の管理\n指定管理者制度, 指定管理制度\n")
    terms = ["指定", "管理者", "制度", "と", "指定", "管理"]
    assert [(a, b) for a, b, _ in table.matches(terms)] == [(0, 3), (4, 6)]
    assert table.matches([]) == []


def test_load_caches_and_rereads_a_changed_file(tmp_path):
    path = tmp_path / "synonyms.txt"
    path.write_text("BPO, 業務委託\n", encoding="utf-8")
    first = load(path)
    assert load(str(path)) is first
    path.write_text("BPO, アウトソーシング\n", encoding="utf-8")
    later = time.time_ns() + 10**9
    os.utime(path, ns=(later, later))
    assert texts(load(path), "bpo") == ["アウトソーシング"]


def test_load_of_nothing_or_a_missing_file_is_none(tmp_path):
    assert load(None) is None and load("") is None
    assert load(tmp_path / "missing.txt") is None


def test_a_file_that_is_not_utf8_is_a_problem_not_a_crash(tmp_path):
    path = tmp_path / "sjis.txt"
    path.write_bytes("BPO, 業務委託".encode("shift_jis"))
    table = load(path)
    assert len(table) == 0 and table.problems
