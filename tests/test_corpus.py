"""kb.corpus: every format loads, broken inputs are reported and skipped, the rest loads."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kb.corpus import (
    Article,
    LoadResult,
    Problem,
    load_categories,
    load_sources,
    validate_id,
    write_markdown,
)
from kb.errors import BadArticle

DATA = Path(__file__).parent / "data"
FORMATS = DATA / "formats"
BROKEN = DATA / "broken"


# --- the fixture corpus --------------------------------------------------------------


def test_fixture_corpus_loads_without_problems(corpus_dir):
    result = load_sources([corpus_dir])
    assert result.problems == []
    assert result.files == len(result.articles) == 9
    assert result.summary() == "9 articles from 9 files, 0 skipped"


def test_markdown_fields(corpus_dir):
    (article,) = [a for a in load_sources([corpus_dir]).articles
                  if a.id == "kakegawa-castle-shitei-kanri"]
    assert article.title.startswith("掛川市が掛川城の指定管理料を見直し")
    assert article.date == "2023-06-15"  # YAML reads a date; we keep ISO text
    assert article.prefecture == "静岡県"
    assert article.municipality == "掛川市"
    assert article.categories == ["公共施設・指定管理", "観光・地域振興"]
    assert article.tags == ["指定管理者制度", "掛川城", "利用料金制"]
    assert article.source == "テスト用に書いた架空の記事"
    assert article.body.startswith("静岡県掛川市は令和5年度から")
    assert "---" not in article.body and "prefecture:" not in article.body
    assert article.path.endswith("kakegawa-castle-shitei-kanri.md")


def test_nationwide_article_has_no_municipality(corpus_dir):
    (article,) = [a for a in load_sources([corpus_dir]).articles
                  if a.id == "gyomu-itaku-shitei-kanri-kaisetsu"]
    assert article.prefecture == "全国" and article.municipality is None


def test_article_to_dict_round_trips_through_markdown(corpus_dir, tmp_path):
    articles = load_sources([corpus_dir]).articles
    for article in articles:
        write_markdown(article, tmp_path)
    shutil.copy(corpus_dir / "categories.yml", tmp_path)
    again = load_sources([tmp_path])
    assert again.problems == []
    strip = lambda a: {k: v for k, v in a.to_dict().items() if k != "path"}  # noqa: E731
    assert [strip(a) for a in again.articles] == [strip(a) for a in articles]


# --- one good file of each other format ---------------------------------------------


def test_text_file_first_line_is_the_title():
    result = load_sources([FORMATS / "madoguchi-memo.txt"])
    assert result.problems == []
    (article,) = result.articles
    assert article.id == "madoguchi-memo"
    assert article.title == "窓口業務委託の引き継ぎメモ"
    assert article.body.startswith("委託先への引き継ぎでは")
    assert "引き継ぎメモ" not in article.body
    assert article.date is None and article.categories == []


def test_html_file_keeps_title_and_main_text_and_drops_script_and_nav():
    result = load_sources([FORMATS / "call-center-report.html"])
    assert result.problems == []
    (article,) = result.articles
    assert article.id == "call-center-report"
    assert article.title == "コールセンターの運営報告"
    assert "入電は、月平均で約6,000件でした。" in article.body
    assert "R&Dの担当" in article.body  # character references are decoded
    for dropped in ("計測用スクリプト", "本文に混ぜてはいけない", "お知らせ一覧", "トップ",
                    "著作権表示", "color", "<p>", "document.write"):
        assert dropped not in article.body


def test_jsonl_file_gives_one_article_per_line():
    path = FORMATS / "kyufukin-cases.jsonl"
    result = load_sources([path])
    assert result.problems == []
    first, second = result.articles
    assert first.to_dict() == {
        "id": "jsonl-kyufukin-1",
        "title": "給付金の申請受付を臨時に委託",
        "body": "臨時の給付金で、申請書の開封と入力を民間事業者に委託した。",
        "date": "2022-01-15",
        "prefecture": "宮城県",
        "municipality": "仙台市",
        "categories": ["給付金・臨時業務"],
        "tags": ["給付金", "データ入力"],
        "url": "https://example.jp/cases/1",
        "source": "テスト用",
        "path": f"{path}:1",
    }
    assert second.id == "jsonl-kyufukin-2" and second.path == f"{path}:2"
    assert second.categories == ["給付金・臨時業務", "コールセンター"]


def test_formats_folder_loads_every_format():
    result = load_sources([FORMATS])
    assert result.problems == []
    assert result.files == 3
    assert sorted(a.id for a in result.articles) == [
        "call-center-report", "jsonl-kyufukin-1", "jsonl-kyufukin-2", "madoguchi-memo"]


# --- broken inputs -------------------------------------------------------------------


@pytest.fixture(scope="module")
def broken():
    return load_sources([BROKEN])


@pytest.mark.parametrize("name, line, reason", [
    ("invalid-yaml.md", None, "not valid YAML"),
    ("missing-title.md", None, "title is missing"),
    ("unknown-category.md", None, "unknown categories ['存在しない分類']"),
    ("unknown-prefecture.md", None, "unknown prefecture '東京府'"),
    ("bad-date.md", None, "is not YYYY-MM-DD"),
    ("invalid-id.md", None, "invalid id '../etc'"),
    ("no-front-matter.md", None, "no YAML front matter"),
    ("dup-second.md", None, "duplicate id 'dup-case'"),
    ("lines.jsonl", 2, "invalid JSON"),
    ("lines.jsonl", 3, "body is missing"),
])
def test_each_broken_input_is_a_problem_with_file_line_and_reason(broken, name, line, reason):
    matches = [p for p in broken.problems if Path(p.file).name == name and p.line == line]
    assert len(matches) == 1, broken.problems
    (problem,) = matches
    assert reason in problem.reason
    assert Path(problem.file) == BROKEN / name
    where = f"{BROKEN / name}:{line}" if line else str(BROKEN / name)
    assert str(problem) == f"{where}: {problem.reason}"


def test_good_articles_next_to_broken_ones_still_load(broken):
    assert sorted(a.id for a in broken.articles) == ["broken-dir-good", "dup-case", "jsonl-good"]
    assert len(broken.problems) == 10
    assert broken.summary() == "3 articles from 11 files, 10 skipped"


def test_duplicate_id_keeps_the_first_and_names_it(broken):
    (kept,) = [a for a in broken.articles if a.id == "dup-case"]
    assert kept.path.endswith("dup-first.md")
    (problem,) = [p for p in broken.problems if "duplicate" in p.reason]
    assert "dup-first.md" in problem.reason


def test_duplicate_across_sources_is_reported(corpus_dir, tmp_path):
    copy = tmp_path / "copy.md"
    shutil.copy(corpus_dir / "shiroi-madoguchi-itaku.md", copy)
    result = load_sources([corpus_dir, copy])
    assert len(result.articles) == 9
    (problem,) = result.problems
    assert problem.file == str(copy) and "duplicate id 'shiroi-madoguchi-itaku'" in problem.reason


def test_duplicate_id_in_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "dups.jsonl"
    line = '{"id": "same", "title": "同じID", "body": "本文"}\n'
    path.write_text(line * 2, encoding="utf-8")
    (problem,) = load_sources([path]).problems
    assert (problem.file, problem.line) == (str(path), 2)


def test_invalid_utf8_is_a_problem_and_the_rest_loads(tmp_path, corpus_dir):
    (tmp_path / "latin1.md").write_bytes(
        "---\nid: latin1\ntitle: caf\xe9\n---\nbody\n".encode("latin-1"))
    (tmp_path / "sjis.txt").write_bytes("窓口業務\n委託の記録".encode("shift_jis"))
    (tmp_path / "mixed.jsonl").write_bytes(
        b'{"id": "ok", "title": "t", "body": "b"}\n'
        b'{"id": "bad", "title": "\xff\xfe", "body": "b"}\n')
    shutil.copy(corpus_dir / "akita-shimin-call-center.md", tmp_path)
    result = load_sources([tmp_path])
    assert sorted(a.id for a in result.articles) == ["akita-shimin-call-center", "ok"]
    reasons = {(Path(p.file).name, p.line): p.reason for p in result.problems}
    assert set(reasons) == {("latin1.md", None), ("sjis.txt", None), ("mixed.jsonl", 2)}
    assert all("UTF-8" in r for r in reasons.values())


def test_utf8_bom_is_accepted_in_markdown(tmp_path):
    (tmp_path / "bom.md").write_bytes(
        "\ufeff---\nid: bom\ntitle: BOM付き\n---\n本文。\n".encode("utf-8"))
    result = load_sources([tmp_path])
    assert result.problems == [] and result.articles[0].title == "BOM付き"


def test_utf8_bom_is_accepted_in_jsonl(tmp_path):
    (tmp_path / "bom.jsonl").write_bytes(
        '\ufeff{"id": "bom", "title": "BOM付き", "body": "本文"}\n'.encode("utf-8"))
    result = load_sources([tmp_path])
    assert result.problems == []
    assert [a.id for a in result.articles] == ["bom"]


def test_impossible_date_in_front_matter_is_a_problem(tmp_path, corpus_dir):
    (tmp_path / "feb30.md").write_text(
        "---\nid: feb30\ntitle: 存在しない日付\ndate: 2023-02-30\n---\n本文。\n", encoding="utf-8")
    shutil.copy(corpus_dir / "akita-shimin-call-center.md", tmp_path)
    result = load_sources([tmp_path])
    assert [a.id for a in result.articles] == ["akita-shimin-call-center"]
    (problem,) = result.problems
    assert problem.file.endswith("feb30.md") and "date" in problem.reason


def test_missing_source_is_a_problem(tmp_path):
    result = load_sources([tmp_path / "nowhere"])
    assert result.articles == []
    assert result.problems == [Problem(str(tmp_path / "nowhere"), None, "no such file or folder")]


def test_unsupported_file_given_directly_is_a_problem(tmp_path):
    path = tmp_path / "notes.docx"
    path.write_bytes(b"PK")
    (problem,) = load_sources([path]).problems
    assert problem.reason == "unsupported file type"


def test_folder_skips_hidden_eval_readme_and_other_suffixes(tmp_path, corpus_dir):
    shutil.copy(corpus_dir / "akita-shimin-call-center.md", tmp_path)
    for rel in (".hidden/x.md", "eval/queries.jsonl", "README.md", "notes.docx"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("not an article", encoding="utf-8")
    result = load_sources([tmp_path])
    assert result.problems == [] and result.files == 1


# --- categories ----------------------------------------------------------------------


def test_categories_file_is_read(corpus_dir):
    categories = load_categories(corpus_dir)
    assert "窓口業務" in categories and "ふるさと納税" in categories
    assert len(categories) == 15
    assert load_categories(FORMATS) is None


def test_categories_are_validated_only_against_categories_yml(tmp_path):
    shutil.copy(BROKEN / "unknown-category.md", tmp_path)
    assert [a.id for a in load_sources([tmp_path]).articles] == ["unknown-category"]
    shutil.copy(BROKEN / "categories.yml", tmp_path)
    result = load_sources([tmp_path])
    assert result.articles == [] and "unknown categories" in result.problems[0].reason


def test_categories_yml_that_is_not_a_list_is_a_problem(tmp_path):
    (tmp_path / "categories.yml").write_text("窓口業務: 1\n", encoding="utf-8")
    shutil.copy(BROKEN / "good.md", tmp_path)
    result = load_sources([tmp_path])
    assert [a.id for a in result.articles] == ["broken-dir-good"]  # not validated
    (problem,) = result.problems
    assert problem.file.endswith("categories.yml") and "YAML list" in problem.reason


def test_every_fixture_category_is_in_the_taxonomy(corpus_dir):
    taxonomy = load_categories(corpus_dir)
    for article in load_sources([corpus_dir]).articles:
        assert article.categories and set(article.categories) <= taxonomy


# --- validation helpers ----------------------------------------------------------------


@pytest.mark.parametrize("value", ["kakegawa-castle", "case_01", "v1.2", "掛川城", 42])
def test_valid_ids(value):
    assert validate_id(value) == str(value)


@pytest.mark.parametrize("value", ["../etc", "a/b", "a..b", ".hidden", "", " ", "a b",
                                   "x" * 129, None, True, ["a"]])
def test_invalid_ids(value):
    with pytest.raises(BadArticle):
        validate_id(value)


def test_load_result_summary():
    result = LoadResult(articles=[Article("a", "t", "b")], problems=[Problem("f", 2, "r")],
                        files=2)
    assert result.summary() == "1 articles from 2 files, 1 skipped"
    assert str(result.problems[0]) == "f:2: r"
    assert LoadResult().summary() == "0 articles from 0 files, 0 skipped"
