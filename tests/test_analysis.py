"""kb.analysis: Japanese text -> terms, offsets, positions, and the Whoosh tokenizer."""
from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kb.analysis import (
    MAX_CHUNK_CHARS,
    analyze,
    chunks,
    clean_text,
    fold_term,
    is_stop,
    split_sentences,
    sudachi_analyzer,
    terms,
)


def assert_offsets_right(text, morphs):
    """Every morph lies inside the text and its surface is exactly text[start:end]."""
    for m in morphs:
        assert 0 <= m.start <= m.end <= len(text), m
        assert text[m.start:m.end] == m.surface, m


# --- offsets -------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "掛川市は令和5年度から掛川城の指定管理料を見直した。",
    "白井市の待ち時間は?　ＢＰＯで半分に！",
    "  先頭と末尾に空白  \n\n改行も\t入る  ",
    "１２３件の申込書と㍿の表記",
])
def test_offsets_are_inside_the_text_and_surfaces_match(text):
    for mode in ("index", "query"):
        morphs = analyze(text, mode)
        assert morphs
        assert_offsets_right(text, morphs)


def test_empty_text_gives_nothing():
    assert analyze("") == []
    assert analyze("", "query") == []


# --- normalisation -------------------------------------------------------------------


@pytest.mark.parametrize("a, b", [
    ("ＢＰＯ", "BPO"),
    ("BPO", "bpo"),
    ("引越し", "引っ越し"),
    ("引越", "引っ越し"),
    ("申込", "申し込み"),
    ("１２３", "123"),
    ("ｺｰﾙｾﾝﾀｰ", "コールセンター"),
])
def test_spelling_and_width_variants_give_the_same_terms(a, b):
    assert terms(a) == terms(b)
    assert terms(a, "query") == terms(b, "query")


def test_terms_are_lower_case():
    assert terms("ＢＰＯ") == ["bpo"]


def test_fold_term_drops_okurigana_of_multi_kanji_words():
    assert fold_term("引っ越し") == "引越"
    assert fold_term("申し込み") == "申込"
    assert fold_term("ABC") == "abc"


def test_fold_term_keeps_one_kanji_verbs_apart():
    assert fold_term("行く", "動詞") == "行く"
    assert fold_term("行う", "動詞") == "行う"
    assert terms("行く") != terms("行う")
    # an inflected form still folds to its own verb, not to the other one
    assert terms("行った") == terms("行く")


def test_fold_term_keeps_leading_hiragana_that_is_not_okurigana():
    assert terms("ふるさと納税", "query") != terms("納税", "query")


# --- stop tags -----------------------------------------------------------------------


def test_particles_punctuation_and_symbols_are_dropped():
    morphs = analyze("白井市の窓口で、証明書を交付した。「委託」（BPO）！？")
    surfaces = [m.surface for m in morphs]
    for stop in ("の", "で", "を", "、", "。", "「", "」", "（", "）", "！", "？", "た"):
        assert stop not in surfaces
    assert not any(is_stop(m.pos) for m in morphs)
    assert {"窓口", "証明書", "委託"} <= {m.surface for m in morphs}


def test_is_stop_matches_pos_prefixes():
    assert is_stop(("助詞", "格助詞", "*", "*", "*", "*"))
    assert is_stop(("補助記号", "句点", "*", "*", "*", "*"))
    assert is_stop(("感動詞", "フィラー", "*", "*", "*", "*"))
    assert not is_stop(("感動詞", "一般", "*", "*", "*", "*"))
    assert not is_stop(("名詞", "普通名詞", "一般", "*", "*", "*"))


def test_only_stop_words_give_nothing():
    assert analyze("が、の。を！") == []
    assert analyze("、。！？「」（）") == []
    assert analyze("でも、そして。") == []  # conjunctions


# --- split modes ----------------------------------------------------------------------


def test_index_mode_adds_a_units_beside_the_c_unit():
    morphs = analyze("管理者")
    assert [(m.text, m.sub) for m in morphs] == [("管理者", False), ("管理", True), ("者", True)]
    c, a1, a2 = morphs
    assert c.parts == ("管理", "者")
    assert (a1.start, a1.end, a2.start, a2.end) == (0, 2, 2, 3)
    assert a1.position == c.position and a2.position == c.position + 1


def test_query_mode_has_only_c_units_carrying_their_parts():
    morphs = analyze("管理者", "query")
    assert [(m.text, m.parts, m.sub) for m in morphs] == [("管理者", ("管理", "者"), False)]
    morphs = analyze("窓口業務委託", "query")
    assert [m.text for m in morphs] == ["窓口", "業務委託"]
    assert morphs[1].parts == ("業務", "委託")
    assert not any(m.sub for m in morphs)


def test_a_unit_phrase_lines_up_with_index_positions():
    # the A units of a query word sit at consecutive positions in the index
    morphs = analyze("指定管理者の募集")
    index = {(m.text, m.position) for m in morphs}
    (word,) = analyze("管理者", "query")
    base = next(m.position for m in morphs if m.text == "管理者")
    assert [(part, base + i) in index for i, part in enumerate(word.parts)] == [True, True]


def test_a_units_of_furusato_nozei_sit_at_consecutive_positions():
    (word,) = analyze("ふるさと納税", "query")
    index = {(m.text, m.position) for m in analyze("ふるさと納税")}
    assert [(p, i) in index for i, p in enumerate(word.parts)] == [True] * len(word.parts)


# --- positions -----------------------------------------------------------------------


def test_positions_only_count_kept_tokens():
    # の and で are dropped and do not use up a position
    assert [(m.text, m.position) for m in analyze("窓口の委託で")] == [("窓口", 0), ("委託", 1)]
    assert [m.position for m in analyze("窓口 の の の 委託")] == [0, 1]


@pytest.mark.parametrize("text", [
    "静岡県掛川市は指定管理者に支払う指定管理料を見直した。",
    "市民コールセンターの問い合わせ、ふるさと納税の返礼品。",
])
def test_positions_are_non_decreasing(text):
    for mode in ("index", "query"):
        positions = [m.position for m in analyze(text, mode)]
        assert positions == sorted(positions)
        c_positions = [m.position for m in analyze(text, mode) if not m.sub]
        assert len(set(c_positions)) == len(c_positions)  # C units never share one


# --- long and odd input --------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "窓口業務を民間事業者に委託した。" * 4000,  # 64,000 chars with sentence ends
    "窓口業務委託指定管理料" * 6000,  # 66,000 chars, no sentence end: hard cuts
    "コールセンター\n" * 8000,  # line breaks only
    "㍿" * 20000,  # grows fourfold in Sudachi's own normalisation
])
def test_long_input_does_not_raise_and_offsets_stay_right(text):
    morphs = analyze(text)
    assert_offsets_right(text, morphs)
    assert morphs[-1].end > len(text) - 20  # the end of the text was analysed too
    positions = [m.position for m in morphs]
    assert positions == sorted(positions)


def test_chunks_cover_the_text_at_sentence_ends():
    text = ("あ" * 100 + "。") * 100
    pieces = list(chunks(text))
    assert len(pieces) > 1
    assert "".join(p for _, p in pieces) == text
    for offset, piece in pieces:
        assert text[offset:offset + len(piece)] == piece
        assert len(piece) <= MAX_CHUNK_CHARS
    assert all(p.endswith("。") for _, p in pieces)


def test_words_cut_by_a_hard_chunk_boundary_keep_their_offsets():
    text = "a" * (MAX_CHUNK_CHARS - 1) + "窓口業務" + "b" * 10
    morphs = analyze(text)
    assert_offsets_right(text, morphs)
    assert any(m.start >= MAX_CHUNK_CHARS for m in morphs)


def test_characters_that_normalise_long_do_not_raise():
    text = "㌖" * 5000
    assert_offsets_right(text, analyze(text))


@pytest.mark.parametrize("text, words", [
    ("窓口\ud800業務", {"窓口", "業務"}),  # unpaired high surrogate
    ("\udfff委託", {"委託"}),  # unpaired low surrogate
    ("委託\x00窓口\x00", {"委託", "窓口"}),  # NUL
    ("\x00", set()),
])
def test_unpaired_surrogates_and_nul_do_not_raise(text, words):
    for mode in ("index", "query"):
        morphs = analyze(text, mode)
        # they are replaced one for one, so offsets still point into the original text
        assert_offsets_right(clean_text(text), morphs)
        assert len(clean_text(text)) == len(text)
        found = {m.surface for m in morphs if text[m.start:m.end] == m.surface}
        assert words <= found


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_analyses_with_offsets_in_range(text):
    for mode in ("index", "query"):
        morphs = analyze(text, mode)
        assert_offsets_right(text, morphs)
        positions = [m.position for m in morphs]
        assert positions == sorted(positions)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from("窓口業務委託掛川市のはをー、。！？ 　\nＢＰＯbpo123１２３㍿「」"),
               max_size=200))
def test_japanese_like_text_analyses_with_offsets_in_range(text):
    assert_offsets_right(text, analyze(text))


# --- the Whoosh tokenizer ------------------------------------------------------------


def test_tokenizer_gives_chars_and_positions():
    text = "掛川市の指定管理者"
    tokenizer = sudachi_analyzer()
    tokens = [(t.text, t.startchar, t.endchar, t.pos, t.original)
              for t in tokenizer(text, positions=True, chars=True, keeporiginal=True)]
    assert tokens
    for term, start, end, pos, original in tokens:
        assert text[start:end] == original
    assert [t[0] for t in tokens] == [m.text for m in analyze(text)]
    assert [t[3] for t in tokens] == [m.position for m in analyze(text)]


def test_tokenizer_offsets_respect_start_char_and_start_pos():
    tokenizer = sudachi_analyzer()
    plain = [(t.startchar, t.endchar, t.pos)
             for t in tokenizer("窓口業務", positions=True, chars=True)]
    shifted = [(t.startchar, t.endchar, t.pos)
               for t in tokenizer("窓口業務", positions=True, chars=True,
                                  start_char=10, start_pos=5)]
    assert shifted == [(s + 10, e + 10, p + 5) for s, e, p in plain]


def test_tokenizer_query_mode_has_no_a_units():
    tokenizer = sudachi_analyzer()
    assert [t.text for t in tokenizer("管理者", mode="query")] == ["管理者"]
    assert [t.text for t in tokenizer("管理者", mode="index")] == ["管理者", "管理", "者"]


def test_tokenizer_without_tokenize_yields_the_value_whole():
    tokenizer = sudachi_analyzer()
    tokens = [(t.text, t.startchar, t.endchar)
              for t in tokenizer("窓口業務", tokenize=False, chars=True, start_char=3)]
    assert tokens == [("窓口業務", 3, 7)]


def test_analyzer_pickles():
    analyzer = sudachi_analyzer()
    list(analyzer("準備"))  # used once: the process-wide Sudachi objects exist now
    clone = pickle.loads(pickle.dumps(analyzer))
    assert clone == analyzer
    assert hash(clone) == hash(analyzer)
    assert [t.text for t in clone("ＢＰＯの窓口")] == [t.text for t in analyzer("BPOの窓口")]


# --- sentences -----------------------------------------------------------------------


def test_split_sentences_spans():
    text = "窓口を委託した。待ち時間は減った！\n\n次の課題は？「はい。」と答えた。  最後の文"
    sentences = [text[s:e] for s, e in split_sentences(text)]
    assert sentences == ["窓口を委託した。", "待ち時間は減った！", "次の課題は？",
                         "「はい。」", "と答えた。", "最後の文"]


def test_split_sentences_trims_and_skips_blank():
    assert split_sentences("") == []
    assert split_sentences("   \n\n  ") == []
    text = "  文が一つ。  "
    (span,) = split_sentences(text)
    assert text[span[0]:span[1]] == "文が一つ。"


def test_split_sentences_keeps_closing_brackets_with_their_sentence():
    text = "「窓口を委託する。」（市の説明）"
    assert [text[s:e] for s, e in split_sentences(text)] == ["「窓口を委託する。」", "（市の説明）"]


# --- character bigrams (a ranking field of the index) --------------------------------


def test_char_grams_fold_width_and_case_and_stop_at_punctuation():
    from kb.analysis import char_grams

    assert char_grams("ＢＰＯ委託") == ["bp", "po", "o委", "委託"]
    assert char_grams("窓口、A。") == ["窓口", "a"]  # a one-character run is kept whole
    assert char_grams("") == [] and char_grams("、。") == []


def test_bigram_tokenizer_pickles_and_tokenises():
    from kb.analysis import bigram_analyzer

    analyzer = bigram_analyzer()
    assert pickle.loads(pickle.dumps(analyzer)) == analyzer
    assert [t.text for t in analyzer("掛川城")] == ["掛川", "川城"]


def test_word_spans_are_where_analyze_puts_its_terms(corpus_articles):
    from kb.analysis import word_spans

    texts = [a.body for a in corpus_articles] + ["", "管理者の引っ越し手続き", "\ud800x\x00y"]
    for text in texts:
        assert word_spans(text) == [(m.start, m.end, m.text) for m in analyze(text)]
