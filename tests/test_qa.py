"""Q&A: question typing, answer spans, answers with their source, honest abstention,
and the three surfaces (JSON API, pages, `kb ask`)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kb.index
from kb.analysis import analyze, split_sentences
from kb.answer_types import (DATE, METHOD, MONEY, NOUN, ORGANIZATION, PERSON, PLACE, QUANTITY,
                             REASON, era_year, looks_like_question, read_question, span_types)
from kb.cli import cli
from kb.corpus import Article, load_sources
from kb.errors import BadQuery
from kb.qa import ask, check_question, segments
from kb.qa_features import analyse_passage, match_units, weigh_question
from kb.qa_spans import span_candidates

SEED_Q = "白井市では来庁者の待ち時間がどれだけ短くなった？"
UNRELATED_Q = "火星の首都はどこ？"
CORPUS = Path(__file__).resolve().parents[1] / "corpus"

ARTICLES = [
    Article(
        id="shiroi-madoguchi-qa", title="白井市、窓口の受付と入力を一括委託",
        body=("千葉県の白井市は、保険と年金の窓口で届出の受付から入力までを民間事業者に委託した。\n"
              "受託事業者が受付の順番の付け方を見直した結果、以前は約1時間かかっていた来庁者の"
              "待ち時間は、20分程度まで短くなった。\n"
              "職員は判断が必要な業務に専念できるようになった。")),
    Article(
        id="minato-hinanjo-kyotei", title="港町、避難所運営の支援協定を地元企業と締結",
        body=("港町は令和5年10月に、避難所の運営支援について地元の株式会社みなとサービスと"
              "協定を結んだ。\n"
              "協定に基づく委託料は年間3,950万円で、訓練の費用も含む。\n"
              "受付を<em>QRコード</em>にしたところ、1人あたりの受付時間は約1分半になった。")),
    Article(
        id="yamabiko-toshokan", title="山彦市立図書館の指定管理",
        body=("山彦市は市立図書館の運営を指定管理者に任せている。\n"
              "指定管理の導入後、年間の開館日数は339日に増えた。")),
    Article(
        id="kaigan-kanko", title="海岸町の観光案内所",
        body="海岸町の観光案内所では、手荷物の配送を1個700円で受け付けている。"),
]


@pytest.fixture(scope="module")
def qa_index_dir(tmp_path_factory) -> Path:
    """An index of the four articles above, built once for this module."""
    path = tmp_path_factory.mktemp("qa-index")
    kb.index.build(ARTICLES, path, procs=1, show_progress=False)
    return path


@pytest.fixture(scope="module")
def qa_index(qa_index_dir):
    ix = kb.index.OpenIndex(qa_index_dir)
    yield ix
    ix.close()


@pytest.fixture(scope="module")
def qa_client(qa_index_dir):
    from web import create_app

    return create_app({"INDEX_DIR": str(qa_index_dir), "TESTING": True}).test_client()


# --- question analysis --------------------------------------------------------------


@pytest.mark.parametrize("question, answer_type, unit", [
    (SEED_Q, QUANTITY, "時間"),
    ("掛川城の天守が木造で復元されたのはいつ？", DATE, None),
    ("何年に建てられたか", DATE, "年"),
    ("この城はどの県にある？", PLACE, None),
    ("白浜町の観光案内所はどこにある？", PLACE, None),
    ("業務を受託したのはどこ？", ORGANIZATION, None),
    ("阿南市にセンターを開設したのはどの会社？", ORGANIZATION, None),
    ("誰が設立したか", PERSON, None),
    ("掛川城の指定管理料はいくら？", MONEY, None),
    ("ピーク時に何人のスタッフが配置された？", QUANTITY, "人"),
    ("最も多い日に受けた電話は何件？", QUANTITY, "件"),
    ("日本が何%を占めるか", QUANTITY, "%"),
    ("平均待ち時間は何分だった？", QUANTITY, "分"),
    ("梅雨とは何季の一種か?", NOUN, None),
    ("なぜ雨が降るのか", REASON, None),
    ("どのように作られたか", METHOD, None),
])
def test_question_types(question, answer_type, unit):
    q = read_question(question)
    assert q.answer_type == answer_type
    assert q.unit == unit


def test_question_keeps_its_content_words_apart_from_the_interrogative():
    q = read_question("何年に建てられたか")
    described = q.describe()
    assert described["interrogative"] == "何" and described["head"] == "年"
    assert "年" not in described["terms"]  # 何*年*: the counter belongs to the interrogative


@pytest.mark.parametrize("text, expected", [
    (SEED_Q, True),
    ("窓口業務は委託できる?", True),
    ("指定管理料はいくら", True),
    ("どこに拠点がある", True),
    ("窓口業務 委託", False),
    ("白井市 待ち時間", False),
    ("", False),
])
def test_looks_like_question(text, expected):
    assert looks_like_question(text) is expected


# --- candidate spans ----------------------------------------------------------------


@pytest.mark.parametrize("text, kind", [
    ("1,340件", QUANTITY),
    ("20分程度", QUANTITY),
    ("3,100万円", MONEY),
    ("約6億8,000万円", MONEY),
    ("令和5年度", DATE),
    ("平成6年", DATE),
    ("2017年7月", DATE),
    ("株式会社あずまコンシェルジュ", ORGANIZATION),
    ("千葉県", PLACE),
])
def test_span_types(text, kind):
    units = analyze(text, "query")
    assert kind in span_types(units, text)


def test_era_year():
    assert era_year("令和5年10月") == 2023
    assert era_year("令和元年5月") == 2019
    assert era_year("平成6年") == 1994
    assert era_year("2023年") is None


def _spans(question: str, body: str) -> list[str]:
    q = read_question(question)
    wts = weigh_question(q, lambda term: 1, 10)
    p = analyse_passage("x", "題", body)
    out = []
    for s in p.sentences:
        out += [sp.text for sp in span_candidates(q, wts, p, s, match_units(q, wts, s))]
    return out


def test_number_and_unit_spans_stay_whole():
    spans = _spans("電話は何件？", "最も多い日には1,340件の電話を受けた。")
    assert "1,340件" in spans
    assert not any(s.startswith("件") or s == "1,340" for s in spans)


def test_reiwa_dates_are_never_cut():
    spans = _spans("協定を結んだのはいつ？", "港町は令和5年10月に協定を結んだ。")
    assert "令和5年10月" in spans
    assert not any(s.startswith(("5年", "年")) for s in spans)


def test_company_names_are_kept_whole():
    spans = _spans("開設したのはどの会社？",
                   "株式会社あおしおビジネスサービスがセンターを開設した。")
    assert "株式会社あおしおビジネスサービス" in spans
    assert "株式会社" not in spans


def test_segments_rebuild_the_sentence():
    parts = segments("待ち時間は20分程度まで短くなった。", 5, 10)
    assert "".join(p["text"] for p in parts) == "待ち時間は20分程度まで短くなった。"
    assert [p["text"] for p in parts if p["answer"]] == ["20分程度"]


# --- answering ------------------------------------------------------------------------


def test_seed_question_answers_with_sentence_article_and_offsets(qa_index):
    res = ask(qa_index, SEED_Q)
    assert res["answered"] is True
    a = res["answer"]
    assert a["text"] == "20分程度"
    assert a["article_id"] == "shiroi-madoguchi-qa"
    assert a["title"] == "白井市、窓口の受付と入力を一括委託"
    body = qa_index.get_article(a["article_id"])["body"]
    assert body[a["start"]:a["end"]] == "20分程度"
    assert body[a["sentence_start"]:a["sentence_end"]] == a["sentence"]
    assert (a["sentence_start"], a["sentence_end"]) in split_sentences(body)
    assert "約1時間" in a["sentence"]
    assert 0.0 <= res["confidence"] <= 1.0 and res["confidence"] >= res["threshold"]


@pytest.mark.parametrize("question, answer", [
    ("港町が避難所運営の支援協定を結んだのはいつ？", "令和5年10月"),
    ("港町の避難所運営の協定に基づく委託料は年間いくら？", "3,950万円"),
    ("港町と避難所運営の支援協定を結んだのはどの会社？", "株式会社みなとサービス"),
    ("山彦市立図書館の年間の開館日数は指定管理の導入後に何日に増えた？", "339日"),
])
def test_typed_questions(qa_index, question, answer):
    res = ask(qa_index, question)
    assert res["answered"] and res["answer"]["text"] == answer


@pytest.mark.parametrize("question", [UNRELATED_Q, "ワールドカップで優勝した国はどこ？"])
def test_abstains_on_a_question_the_articles_do_not_answer(qa_index, question):
    res = ask(qa_index, question)
    assert res["answered"] is False and res["answer"] is None
    assert res["confidence"] < res["threshold"]


def test_other_candidates_are_other_sentences(qa_index):
    res = ask(qa_index, SEED_Q)
    assert res["candidates"]
    assert all(c["sentence"] != res["answer"]["sentence"] for c in res["candidates"])


@pytest.mark.parametrize("bad", ["", "   ", None, 123, "あ" * 1001])
def test_bad_questions_raise_bad_query(bad):
    with pytest.raises(BadQuery):
        check_question(bad)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1, max_size=60))
def test_any_text_answers_or_abstains_within_the_article(qa_index, text):
    try:
        res = ask(qa_index, text)
    except BadQuery:
        return
    a = res["answer"]
    if a is not None:
        body = qa_index.get_article(a["article_id"])["body"]
        assert 0 <= a["start"] < a["end"] <= len(body)
        assert body[a["start"]:a["end"]] == a["text"]
        assert a["sentence_start"] <= a["start"] and a["end"] <= a["sentence_end"]


# --- JSON API and pages -------------------------------------------------------------


def test_api_ask(qa_client):
    r = qa_client.get("/api/ask", query_string={"q": SEED_Q})
    assert r.status_code == 200
    data = r.get_json()
    assert data["ok"] is True and data["answered"] is True
    assert data["answer"]["text"] == "20分程度"
    assert data["answer"]["article_id"] == "shiroi-madoguchi-qa"
    assert {"sentence", "start", "end", "title", "confidence", "segments"} <= set(data["answer"])


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "  "}, {"q": "あ" * 1001}])
def test_api_ask_rejects_bad_input_in_the_one_error_shape(qa_client, params):
    r = qa_client.get("/api/ask", query_string=params)
    assert r.status_code == 400
    data = r.get_json()
    assert data["ok"] is False
    assert data["error"]["code"] == "bad_query" and data["error"]["message"]


def test_api_ask_abstains(qa_client):
    data = qa_client.get("/api/ask", query_string={"q": UNRELATED_Q}).get_json()
    assert data["ok"] is True and data["answered"] is False and data["answer"] is None


def test_ask_page_highlights_the_answer_in_its_sentence(qa_client):
    html = qa_client.get("/ask", query_string={"q": SEED_Q}).get_data(as_text=True)
    assert "<mark>20分程度</mark>" in html
    assert 'href="/articles/shiroi-madoguchi-qa"' in html
    assert "ほかの候補" in html


def test_ask_page_says_not_found_and_offers_the_closest_articles(qa_client):
    html = qa_client.get("/ask", query_string={"q": UNRELATED_Q}).get_data(as_text=True)
    assert "該当する回答が見つかりませんでした" in html
    assert "関連しそうな記事" in html and "<mark>" not in html.split("関連しそうな記事")[0]


def test_ask_page_escapes_the_question_and_the_article_text(qa_client):
    q = "<script>alert(1)</script>港町の受付はQRコードで1人あたり何分になった？"
    html = qa_client.get("/ask", query_string={"q": q}).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    assert "<em>" not in html  # markup written in an article is shown as text
    html = qa_client.get("/ask", query_string={"q": "港町の受付は何にした？"}).get_data(as_text=True)
    assert "<em>" not in html


def test_empty_ask_page_shows_the_question_box(qa_client):
    html = qa_client.get("/ask").get_data(as_text=True)
    assert 'name="q"' in html and "質問する" in html


def test_home_page_has_a_question_box(qa_client):
    html = qa_client.get("/").get_data(as_text=True)
    assert 'action="/ask"' in html


def test_search_page_answers_a_question_typed_into_the_search_box(qa_client):
    html = qa_client.get("/search", query_string={"q": SEED_Q}).get_data(as_text=True)
    assert "answer-box" in html and "<mark>20分程度</mark>" in html
    html = qa_client.get("/search", query_string={"q": "窓口 委託"}).get_data(as_text=True)
    assert "answer-box" not in html


# --- the `kb ask` command -------------------------------------------------------------


def test_cli_ask(runner, qa_index_dir):
    result = runner.invoke(cli, ["ask", SEED_Q, "--index", str(qa_index_dir)])
    assert result.exit_code == 0, result.output
    assert "20分程度" in result.output and "shiroi-madoguchi-qa" in result.output
    result = runner.invoke(cli, ["ask", SEED_Q, "--index", str(qa_index_dir), "--json"])
    data = json.loads(result.output)
    assert data["ok"] is True and data["answer"]["text"] == "20分程度"
    result = runner.invoke(cli, ["ask", UNRELATED_Q, "--index", str(qa_index_dir)])
    assert result.exit_code == 0 and "該当する回答が見つかりませんでした" in result.output


def test_cli_ask_needs_a_question(runner, qa_index_dir):
    result = runner.invoke(cli, ["ask", "--index", str(qa_index_dir)])
    assert result.exit_code == 1 and "Error:" in result.output


def test_cli_ask_batch_contract(runner, qa_index_dir, tmp_path):
    lines = [
        json.dumps({"id": "a", "q": SEED_Q}, ensure_ascii=False),
        json.dumps({"id": 2, "q": UNRELATED_Q}, ensure_ascii=False),
        "{not json",
        "",
        json.dumps({"id": "no-q"}),
        json.dumps({"id": "n", "q": 123}),
        json.dumps({"id": "e", "q": ""}),
    ]
    batch = tmp_path / "questions.jsonl"
    batch.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = runner.invoke(cli, ["ask", "--batch", str(batch), "--index", str(qa_index_dir)])
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.output.splitlines()]
    assert [o["id"] for o in out] == ["a", 2, None, "no-q", "n", "e"]
    first, second = out[0], out[1]
    assert set(first) == {"id", "answer", "sentence", "article_id", "score"}
    assert first["answer"] == "20分程度" and first["article_id"] == "shiroi-madoguchi-qa"
    assert "20分程度" in first["sentence"] and isinstance(first["score"], float)
    assert second["answer"] is None and second["sentence"] is None
    assert second["article_id"] is None and isinstance(second["score"], float)
    for bad in out[2:]:
        assert set(bad) == {"id", "error"} and bad["error"]["code"] in ("bad_request",
                                                                       "bad_query")


# --- the sample knowledge base's judged questions -------------------------------------


@pytest.fixture(scope="module")
def corpus_questions() -> list[dict]:
    files = sorted((CORPUS / "eval").glob("*questions*.jsonl"))
    if not files:
        pytest.skip("no judged questions in corpus/eval")
    out = []
    for f in files:
        out += [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    return out


def test_sample_corpus_questions(corpus_questions, tmp_path_factory):
    """The shipped knowledge base answers its judged questions (floors set below the
    values measured when this test was written: 90 questions, answered 0.99, EM 0.54,
    F1 0.68, right article 0.99)."""
    from bench.metrics import char_f1, exact_match

    path = tmp_path_factory.mktemp("corpus-index")
    kb.index.build(load_sources([CORPUS]).articles, path, procs=1, show_progress=False)
    ix = kb.index.OpenIndex(path)
    try:
        n = len(corpus_questions)
        em = f1 = right_article = answered = 0.0
        for item in corpus_questions:
            res = ask(ix, item["q"])
            a = res["answer"]
            if a is None:
                continue
            answered += 1
            em += exact_match(a["text"], [item["answer"]])
            f1 += char_f1(a["text"], [item["answer"]])
            right_article += a["article_id"] == item.get("article_id")
    finally:
        ix.close()
    assert answered / n >= 0.9
    assert right_article / n >= 0.95
    assert em / n >= 0.45
    assert f1 / n >= 0.60
