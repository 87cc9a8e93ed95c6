"""Japanese text -> terms: the one place Sudachi is called.

Search (Whoosh), related articles (TF-IDF) and Q&A all take their terms from
`analyze`, so they agree on what a word is.
"""
from __future__ import annotations

import os
import re
import threading
import unicodedata
from typing import Iterator, NamedTuple

from whoosh.analysis import Token, Tokenizer

# elasticsearch-sudachi's default stop tags, matched as prefixes of the POS tuple.
STOP_TAGS: tuple[tuple[str, ...], ...] = (
    ("接続詞",),
    ("感動詞", "フィラー"),
    ("助動詞",),
    ("助詞",),
    ("記号",),
    ("補助記号",),
    ("空白",),
)

# Sudachi rejects inputs over 49,149 UTF-8 bytes (65,535 after its own normalisation,
# which can grow a character fourfold: ㍿ -> 株式会社). 4,000 characters stays under both.
MAX_CHUNK_CHARS = 4000
_CHUNK_BREAK = re.compile(r"[。！？!?\n]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_KANJI = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_HIRAGANA = re.compile(r"[\u3041-\u309f]")
# okurigana: hiragana right after a kanji (引っ越し -> 引越); leading kana stays (ふるさと納税)
_OKURIGANA = re.compile(r"(?<=[\u3400-\u9fff\uf900-\ufaff\u3005])[\u3041-\u309f]+")
_KANA_ONLY = re.compile(r"^[\u3041-\u309f\u30a0-\u30ffー]+$")

ANALYSIS_VERSION = 2


class Morph(NamedTuple):
    """One kept token: its term, where it sits in the text, and what it is."""

    text: str  # the term: lower-cased, okurigana-folded normalized form
    surface: str  # exactly text[start:end]
    start: int
    end: int
    position: int  # counts A units, so C-unit and A-unit phrases both line up
    pos: tuple[str, ...]
    reading: str  # katakana reading
    parts: tuple[str, ...] = ()  # terms of the A sub-units when the C unit splits
    sub: bool = False  # True for an A sub-unit emitted beside its C unit


# --- Sudachi objects: one Dictionary per process, one Tokenizer per thread ---------

_dictionary = None
_dictionary_pid = -1
_dictionary_lock = threading.Lock()
_local = threading.local()


def _get_dictionary():
    global _dictionary, _dictionary_pid
    with _dictionary_lock:
        if _dictionary is None:
            from sudachipy import Dictionary

            _dictionary = Dictionary(dict="core")
            _dictionary_pid = os.getpid()
        return _dictionary


def _get_tokenizer():
    """Return this thread's C-mode tokenizer (Sudachi tokenizers are not thread-safe)."""
    tok = getattr(_local, "tokenizer", None)
    if tok is None:
        from sudachipy import SplitMode

        tok = _get_dictionary().tokenizer(SplitMode.C)
        _local.tokenizer = tok
        _local.split_a = SplitMode.A
    return tok


def warm_up() -> None:
    """Open the dictionary now (e.g. before forking server workers)."""
    _get_tokenizer().tokenize("準備")


# --- normalisation -------------------------------------------------------------------


def is_stop(pos: tuple[str, ...]) -> bool:
    """True when a POS tuple starts with one of the default stop tags."""
    return any(pos[: len(tag)] == tag for tag in STOP_TAGS)


def fold_term(normalized: str, pos0: str = "名詞") -> str:
    """Lower-case a normalized form and drop okurigana from multi-kanji words.

    Sudachi maps 引越し to 引っ越し but 引っ越し (a verb stem) to 引っ越す, and
    申込 to 申し込み but 申し込み書 to 申し込む + 書; dropping the hiragana of words
    with two or more kanji makes all of them 引越 / 申込.  One-kanji words keep
    their kana (行く and 行う must stay apart).
    """
    term = normalized.lower()
    if pos0 in ("名詞", "動詞") and len(_KANJI.findall(term)) >= 2 and _HIRAGANA.search(term):
        return _OKURIGANA.sub("", term)
    return term


def clean_text(text: str) -> str:
    """Replace what Sudachi cannot take (unpaired surrogates, NUL) keeping offsets."""
    text = _SURROGATE.sub("\ufffd", text)
    return text.replace("\x00", " ")


def is_kana(text: str) -> bool:
    """True for a string of hiragana/katakana only (a reading typed by a user)."""
    return bool(_KANA_ONLY.match(text))


def to_katakana(text: str) -> str:
    """Convert hiragana to katakana (readings are compared in katakana)."""
    return "".join(chr(ord(c) + 0x60) if "\u3041" <= c <= "\u3096" else c for c in text)


# --- chunking and analysis -----------------------------------------------------------


def chunks(text: str, limit: int = MAX_CHUNK_CHARS) -> Iterator[tuple[int, str]]:
    """Yield (offset, piece) with pieces under Sudachi's limit, cut at sentence ends."""
    start = 0
    n = len(text)
    while n - start > limit:
        window = text[start : start + limit]
        cut = 0
        for m in _CHUNK_BREAK.finditer(window):
            cut = m.end()
        if cut == 0:
            cut = limit  # no sentence end: cut hard rather than fail
        yield start, text[start : start + cut]
        start += cut
    if start < n:
        yield start, text[start:]


# Everything about a word except where it stands depends only on the dictionary
# entry and its surface, so it is worked out once per process and reused: this
# more than halves the cost of analysis over plain tokenisation.
_word_cache: dict[tuple[int, str], tuple | None] = {}
MAX_WORD_CACHE = 400_000


def _word_info(m, split_a) -> tuple | None:
    """Return (term, pos, reading, parts, subs, width) for a morpheme, or None if stopped."""
    key = (m.word_id(), m.surface())
    info = _word_cache.get(key, _word_cache)
    if info is not _word_cache:
        return info
    pos = m.part_of_speech()
    if is_stop(pos) or not key[1].strip():
        info = None
    else:
        term = fold_term(m.normalized_form(), pos[0])
        subs = m.split(split_a)
        parts: tuple[str, ...] = ()
        sub_info = []
        if len(subs) > 1:
            base = m.begin()
            for i, a in enumerate(subs):
                apos = a.part_of_speech()
                if is_stop(apos):
                    continue
                aterm = fold_term(a.normalized_form(), apos[0])
                parts += (aterm,)
                if aterm != term or i > 0:  # every A position filled, so phrases line up
                    sub_info.append((aterm, a.begin() - base, a.end() - base, i, apos,
                                     a.reading_form()))
        info = (term, pos, m.reading_form(), parts, tuple(sub_info), max(len(subs), 1))
    if len(_word_cache) >= MAX_WORD_CACHE:
        _word_cache.clear()
    _word_cache[key] = info
    return info


def analyze(text: str, mode: str = "index") -> list[Morph]:
    """Turn text into kept morphs.

    mode "index": every C unit plus, when it splits, its A units (so 管理者 also
    indexes 管理 and 者); mode "query": C units only, each carrying its A-unit terms.
    Positions advance by A units in both modes so phrases match either way.
    """
    if not text:
        return []
    text = clean_text(text)
    tokenizer = _get_tokenizer()
    split_a = _local.split_a
    index_mode = mode != "query"
    out: list[Morph] = []
    append = out.append
    position = 0
    for offset, m in _morphemes(tokenizer, text):
        info = _word_info(m, split_a)
        if info is None:
            continue  # positions only count kept tokens
        term, pos, reading, parts, subs, width = info
        start = offset + m.begin()
        end = offset + m.end()
        append(Morph(term, text[start:end], start, end, position, pos, reading, parts))
        if index_mode:
            for aterm, a_start, a_end, i, apos, areading in subs:
                append(Morph(aterm, text[start + a_start:start + a_end], start + a_start,
                             start + a_end, position + i, apos, areading, (), True))
        position += width
    return out


def word_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, term) of what `analyze(text)` keeps, C units and A sub-units alike.

    For highlighting, which needs only where each term sits: the same walk as
    `analyze` without building a Morph per word (a third of its cost).
    """
    if not text:
        return []
    text = clean_text(text)
    tokenizer = _get_tokenizer()
    split_a = _local.split_a
    out: list[tuple[int, int, str]] = []
    append = out.append
    for offset, m in _morphemes(tokenizer, text):
        info = _word_info(m, split_a)
        if info is None:
            continue
        start = offset + m.begin()
        append((start, offset + m.end(), info[0]))
        for aterm, a_start, a_end, _i, _apos, _areading in info[4]:
            append((start + a_start, start + a_end, aterm))
    return out


def _morphemes(tokenizer, text: str):
    """Yield (chunk offset, morpheme) over text cut into pieces Sudachi accepts."""
    for offset, piece in chunks(text):
        yield from _tokenize_piece(tokenizer, piece, offset)


def _tokenize_piece(tokenizer, piece: str, offset: int):
    try:
        morphemes = tokenizer.tokenize(piece)
    except Exception as exc:  # SudachiError: its normalisation can outgrow the limit
        if "too long" not in str(exc).lower() or len(piece) < 2:
            raise
        half = len(piece) // 2
        yield from _tokenize_piece(tokenizer, piece[:half], offset)
        yield from _tokenize_piece(tokenizer, piece[half:], offset + half)
        return
    for m in morphemes:
        yield offset, m


def terms(text: str, mode: str = "index") -> list[str]:
    """Return just the term strings of `analyze`."""
    return [m.text for m in analyze(text, mode)]


# --- the Whoosh tokenizer ------------------------------------------------------------


class AnalyzedText(str):
    """A field value that already carries its morphs, so Whoosh need not re-tokenise.

    The bulk build tokenises in worker processes; handing Whoosh this string lets
    the same morphs feed both the index and the TF-IDF model.
    """

    morphs: list[Morph]

    def __new__(cls, text: str, morphs: list[Morph]) -> "AnalyzedText":
        obj = super().__new__(cls, text)
        obj.morphs = morphs
        return obj


class SudachiTokenizer(Tokenizer):
    """Whoosh tokenizer over `analyze`.

    Holds no Sudachi object (the schema is pickled into the index); the process-wide
    dictionary is opened lazily on first use.
    """

    def __init__(self, version: int = ANALYSIS_VERSION):
        self.version = version

    def __eq__(self, other):
        return type(other) is type(self) and other.version == self.version

    def __hash__(self):
        return hash((type(self).__name__, self.version))

    def __call__(self, value, positions=False, chars=False, keeporiginal=False,
                 removestops=True, start_pos=0, start_char=0, tokenize=True,
                 mode="", **kwargs):
        if not tokenize:
            t = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
            t.original = t.text = value
            t.boost = 1.0
            if positions:
                t.pos = start_pos
            if chars:
                t.startchar = start_char
                t.endchar = start_char + len(value)
            yield t
            return
        if mode != "query" and isinstance(value, AnalyzedText):
            morphs = value.morphs
        else:
            morphs = analyze(value, "query" if mode == "query" else "index")
        t = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        for m in morphs:
            t.text = m.text
            t.boost = 1.0
            t.stopped = False
            if keeporiginal:
                t.original = m.surface
            if positions:
                t.pos = start_pos + m.position
            if chars:
                t.startchar = start_char + m.start
                t.endchar = start_char + m.end
            yield t


def sudachi_analyzer():
    """The analyzer used by every analysed field of the index."""
    return SudachiTokenizer()


# --- character bigrams -----------------------------------------------------------------

# Runs of letters, digits and kana/kanji; punctuation and spaces end a run.
_GRAM_BREAK = re.compile(r"[\W_]+")


def char_grams(text: str) -> list[str]:
    """Return the character bigrams of text (NFKC, lower-cased); a one-character run is kept whole.

    Bigrams match words Sudachi does not know or segments differently in the query
    and in an article (new coinages, names, typos in either).
    """
    text = unicodedata.normalize("NFKC", clean_text(text or "")).lower()
    out: list[str] = []
    for run in _GRAM_BREAK.split(text):
        if len(run) == 1:
            out.append(run)
        else:
            out.extend(run[i:i + 2] for i in range(len(run) - 1))
    return out


class BigramTokenizer(Tokenizer):
    """Whoosh tokenizer over `char_grams` (no positions or offsets: it only scores)."""

    def __init__(self, version: int = 1):
        self.version = version

    def __eq__(self, other):
        return type(other) is type(self) and other.version == self.version

    def __hash__(self):
        return hash((type(self).__name__, self.version))

    def __call__(self, value, positions=False, chars=False, keeporiginal=False,
                 removestops=True, start_pos=0, start_char=0, tokenize=True,
                 mode="", **kwargs):
        t = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        grams = char_grams(value) if tokenize else [value]
        for i, gram in enumerate(grams):
            t.text = gram
            t.boost = 1.0
            t.stopped = False
            if keeporiginal:
                t.original = gram
            if positions:
                t.pos = start_pos + i
            if chars:
                t.startchar = t.endchar = start_char
            yield t


def bigram_analyzer():
    """The analyzer of the character-bigram field."""
    return BigramTokenizer()


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Return (start, end) spans of sentences, cut after 。！？!? and at line breaks."""
    spans = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        _add_trimmed(spans, text, start, m.end())
        start = m.end()
    _add_trimmed(spans, text, start, len(text))
    return spans


_SENTENCE_END = re.compile(r"[。！？!?]+[」』）)]*|\n+")


def _add_trimmed(spans: list[tuple[int, int]], text: str, start: int, end: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start, end))
