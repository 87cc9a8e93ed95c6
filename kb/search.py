"""A query string in, ranked hits with snippets and facets out (plain data).

`plan_query` turns what a user typed into a `QueryPlan` (no index needed), and
`search` runs a plan against an open index; `kb search --explain` prints the plan.

How a query is read:
- each space-separated chunk is a clause; its C units are words (`Unit`), and each
  word may be found in several ways (`Alt`): as typed, through the synonym list,
  as another spelling of a year (令和5年度 = 2023年度), or for kana, through the
  readings of the index's proper nouns (かけがわ = 掛川);
- a keyword query needs every clause; a natural-language question (a question word,
  a question mark, or four or more words joined by particles) needs any word and
  ranks by how well the article matches, with question words left out;
- when nothing matches, the query is relaxed step by step (any word, then compounds
  split into their parts, then the characters as typed) and the result says so;
- when little or nothing matches, the index's vocabulary suggests a spelling (もしかして).
"""
from __future__ import annotations

import math
import re
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from whoosh import query as wq

from . import ranking, suggest
from .analysis import Morph, analyze, char_grams, is_kana
from .errors import BadQuery
from .facets import facet_counts
from .index import OpenIndex
from .ranking import Ranker
from .readings import reading_terms
from .snippets import make_snippet
from .suggest import correct_word
from .synonyms import SynonymTable
from .synonyms import load as load_synonyms
from .years import parse_year, year_matches

MAX_QUERY_CHARS = 1000
MAX_PER_PAGE = 100
MAX_PAGE = 1000
FEW_RESULTS = 3  # fewer hits than this, and spelling suggestions are looked for
QUESTION_MIN_WORDS = 4  # this many words joined by particles read as a sentence
MAX_SCANNED = 2000  # articles read to confirm a search by characters
SORTS = ("relevance", "date")
# Filter names as typed (English and Japanese) -> the canonical filter name.
FILTER_ALIASES = {
    "prefecture": "prefecture", "pref": "prefecture", "都道府県": "prefecture",
    "category": "category", "cat": "category", "カテゴリ": "category", "分類": "category",
    "year": "year", "年度": "year",
}
FILTERS = ("prefecture", "category", "year")
FIELD_LABELS = {"title": "タイトル", "body": "本文", "keywords": "キーワード"}
VIA_LABELS = {"synonym": "同義語", "reading": "読み", "year": "年度の言い換え", "chars": "文字列"}
_QUOTES = {'"': '"', "“": "”", "「": "」", "『": "』", "＂": "＂"}
_SPACE = re.compile(r"[\s\u3000]+")
_HIRAGANA = re.compile(r"[\u3041-\u309f]")
_QUESTION_MARK = re.compile(r"[?？]\W*$")
_QUESTION_END = re.compile(r"か[。.]?$")  # ...ですか, ...したのか: a question when particles show a sentence


# --- the plan -------------------------------------------------------------------------


@dataclass
class Alt:
    """One way a word may appear in an article."""

    terms: tuple[str, ...]
    parts: tuple[tuple[str, ...], ...]  # each term's A units; () when it does not split
    via: str = "word"  # word | synonym | reading | year
    text: str = ""  # as shown to people
    phrase: bool = False  # the terms in this order, next to each other (else anywhere)

    def sequence(self) -> list[str]:
        """A-unit terms in order: they sit at consecutive index positions."""
        out: list[str] = []
        for term, parts in zip(self.terms, self.parts):
            out.extend(parts or (term,))
        return out


@dataclass
class Unit:
    """A word of a clause: what was typed and every way it may be found."""

    text: str
    alts: list[Alt]
    weight: float = 1.0

    @property
    def expanded(self) -> list[Alt]:
        return [a for a in self.alts if a.via != "word"]


@dataclass
class Clause:
    """One thing the user asked for: a word (several C units) or a quoted phrase."""

    text: str
    morphs: list[Morph]
    phrase: bool = False
    units: list[Unit] = field(default_factory=list)
    alternatives: list["Clause"] = field(default_factory=list)  # "A OR B"

    @property
    def terms(self) -> list[str]:
        return [m.text for m in self.morphs]

    def all_units(self) -> list[Unit]:
        """The words of this clause, or of each alternative of an OR."""
        if self.alternatives:
            return [u for c in self.alternatives for u in c.units]
        return self.units


@dataclass
class QueryPlan:
    """What a query string means, before it meets an index."""

    text: str
    clauses: list[Clause] = field(default_factory=list)
    excluded: list[Clause] = field(default_factory=list)
    filters: dict[str, list] = field(default_factory=dict)
    question: bool = False  # read as a natural-language question: any word, ranked
    ignored: list[str] = field(default_factory=list)  # question words left out

    def units(self) -> list[Unit]:
        """Every word of every clause."""
        return [u for c in self.clauses for u in c.all_units()]

    def match_terms(self) -> set[str]:
        """Every term a matching document may contain (for highlighting)."""
        out: set[str] = set()
        for unit in self.units():
            for alt in unit.alts:
                out.update(alt.terms)
                for parts in alt.parts:
                    out.update(parts)
        return out

    def expansions(self) -> list[dict]:
        """What synonyms, years and readings added, for people to see."""
        out = []
        for unit in self.units():
            by_via: dict[str, list[str]] = {}
            for alt in unit.expanded:
                by_via.setdefault(alt.via, []).append(alt.text)
            for via, texts in by_via.items():
                out.append({"type": via, "from": unit.text, "to": texts,
                            "message": expansion_message(via, unit.text, texts)})
        return out

    def describe(self) -> dict:
        """A readable form of the plan for --explain and the API."""
        return {
            "clauses": [{"text": c.text, "terms": c.terms, "phrase": c.phrase,
                         "words": [_describe_unit(u) for u in c.all_units()]}
                        for c in self.clauses],
            "excluded": [{"text": c.text, "terms": c.terms} for c in self.excluded],
            "filters": self.filters,
            "question": self.question,
            "ignored": self.ignored,
            "whoosh": str(to_whoosh(self, "or" if self.question else "and"))
            if self.clauses else None,
        }


def _describe_unit(unit: Unit) -> dict:
    return {"text": unit.text, "weight": unit.weight,
            "alternatives": [{"terms": list(a.terms), "via": a.via, "text": a.text,
                              "phrase": a.phrase} for a in unit.alts]}


def expansion_message(via: str, word: str, texts: list[str]) -> str:
    """Say in Japanese what an expansion added to the query."""
    listed = "」「".join(texts)
    if via == "synonym":
        return f"「{word}」の同義語「{listed}」も検索しています。"
    if via == "year":
        return f"「{word}」を「{listed}」としても検索しています。"
    if via == "reading":
        return f"読み「{word}」を「{listed}」としても検索しています。"
    return f"「{word}」を「{listed}」としても検索しています。"


def _split_chunks(text: str) -> list[tuple[str, bool, bool]]:
    """Split on spaces, keeping quoted phrases whole: (chunk, is_phrase, excluded)."""
    out: list[tuple[str, bool, bool]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        negate = False
        if text[i] in "-－" and i + 1 < n and not text[i + 1].isspace():
            negate, i = True, i + 1
        if text[i] in _QUOTES:
            close = text.find(_QUOTES[text[i]], i + 1)
            if close > i + 1:
                out.append((text[i + 1:close], True, negate))
                i = close + 1
                continue
            if close == i + 1:
                i = close + 1  # an empty pair of quotes means nothing
                continue
            i += 1  # an unpaired quote is just a character
        m = _SPACE.search(text, i)
        end = m.start() if m else n
        out.append((text[i:end], False, negate))
        i = end
    return out


def _read_filter(name: str, value: str, filters: dict[str, list]) -> None:
    if name == "year":
        year = parse_year(value)
        if year is None:
            raise BadQuery(f"年度「{value}」を読み取れません。2023、2023年度、令和5年度 のように指定してください。")
        filters.setdefault("year", []).append(year)
    else:
        filters.setdefault(name, []).append(value)


def _word_alt(morphs: list[Morph], via: str = "word") -> Alt:
    return Alt(tuple(m.text for m in morphs), tuple(m.parts for m in morphs), via,
               "".join(m.surface for m in morphs), phrase=False)


def _units(chunk: str, morphs: list[Morph], synonyms: SynonymTable | None) -> list[Unit]:
    """Group a chunk's morphs into words, with year spellings and synonyms as alternatives."""
    terms = [m.text for m in morphs]
    spans: list[tuple[int, int, list[Alt]]] = []
    taken: set[int] = set()
    for start, end, _year, spellings in year_matches(terms):
        typed = _word_alt(morphs[start:end])
        typed.phrase = True
        alts = [typed] + [Alt(s, tuple(() for _ in s), "year", "".join(s), phrase=True)
                          for s in spellings]
        spans.append((start, end, alts))
        taken.update(range(start, end))
    if synonyms is not None and len(synonyms):
        for start, end, found in synonyms.matches(terms):
            if taken.intersection(range(start, end)):
                continue
            alts = [_word_alt(morphs[start:end])]
            alts += [Alt(s.terms, s.parts, "synonym", s.text, phrase=len(s.terms) > 1)
                     for s in found]
            spans.append((start, end, alts))
            taken.update(range(start, end))
    by_start = {s[0]: s for s in spans}
    units: list[Unit] = []
    i = 0
    while i < len(morphs):
        if i in by_start:
            start, end, alts = by_start[i]
            weight = max(ranking.term_weight(m.pos) for m in morphs[start:end])
            units.append(Unit(alts[0].text, alts, weight))
            i = end
        else:
            m = morphs[i]
            units.append(Unit(m.surface, [_word_alt([m])], ranking.term_weight(m.pos)))
            i += 1
    return units


def _has_particles(chunk: str, morphs: list[Morph]) -> bool:
    """True when the chunk has hiragana no kept word covers (particles, endings)."""
    covered = [False] * len(chunk)
    for m in morphs:
        for k in range(max(m.start, 0), min(m.end, len(chunk))):
            covered[k] = True
    return any(not c and _HIRAGANA.match(ch) for ch, c in zip(chunk, covered))


def plan_query(text: str, filters: dict[str, list[str]] | None = None,
               synonyms: SynonymTable | None = None) -> QueryPlan:
    """Parse user syntax: words, "phrases", -exclusions, prefecture:/category:/year: filters."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise BadQuery("検索語は文字列で指定してください。")
    if len(text) > MAX_QUERY_CHARS:
        raise BadQuery(f"検索語が長すぎます（{len(text):,}文字）。{MAX_QUERY_CHARS:,}文字以内にしてください。")
    text = unicodedata.normalize("NFC", text.replace("\x00", " ")).strip()
    plan = QueryPlan(text=text)
    for name, values in (filters or {}).items():
        canonical = FILTER_ALIASES.get(name)
        if canonical is None:
            raise BadQuery(f"「{name}」という絞り込み条件はありません（使えるもの: {', '.join(FILTERS)}）。")
        for value in values:
            if value and value.strip():
                _read_filter(canonical, value.strip(), plan.filters)
    pending_or = False
    particles = False
    for chunk, is_phrase, negate in _split_chunks(text):
        if not is_phrase and not negate:
            if chunk == "OR" and plan.clauses:
                pending_or = True
                continue
            if chunk in ("AND", "NOT"):
                continue
            name, sep, value = chunk.partition(":")
            if not sep:
                name, sep, value = chunk.partition("：")
            canonical = FILTER_ALIASES.get(name.lower() if name.isascii() else name)
            if sep and canonical and value:
                _read_filter(canonical, value, plan.filters)
                continue
        morphs = analyze(chunk, "query")
        if not morphs:
            continue
        clause = Clause(chunk, morphs, phrase=is_phrase)
        if is_phrase:
            alt = _word_alt(morphs)
            alt.phrase = True
            clause.units = [Unit(chunk, [alt])]
        else:
            clause.units = _units(chunk, morphs, synonyms)
            particles = particles or _has_particles(chunk, morphs)
        if negate:
            plan.excluded.append(clause)
        elif pending_or:
            prev = plan.clauses[-1]
            # "A OR B" becomes one clause whose alternatives are A and B
            merged = Clause(f"{prev.text} OR {chunk}", prev.morphs + morphs)
            merged.alternatives = (prev.alternatives or [prev]) + [clause]
            plan.clauses[-1] = merged
        else:
            plan.clauses.append(clause)
        pending_or = False
    if not plan.clauses and not plan.filters:
        raise BadQuery("検索語を入力してください。")
    _read_as_question(plan, particles)
    return plan


def _read_as_question(plan: QueryPlan, particles: bool) -> None:
    """Decide whether the query is a sentence, and leave out its question words."""
    plain = [c for c in plan.clauses if not c.phrase and not c.alternatives]
    asked = [u for c in plain for u in c.units
             if len(u.alts) == 1 and len(u.alts[0].terms) == 1
             and u.alts[0].terms[0] in ranking.QUESTION_WORDS]
    words = len(plan.units()) - len(asked)
    plan.question = bool(asked) or bool(_QUESTION_MARK.search(plan.text)) or (
        particles and (words >= QUESTION_MIN_WORDS or bool(_QUESTION_END.search(plan.text))))
    if asked and words > 0:
        for c in plain:
            kept = [u for u in c.units if u not in asked]
            plan.ignored.extend(u.text for u in c.units if u in asked)
            c.units = kept
        plan.clauses = [c for c in plan.clauses if c.all_units()]


def add_readings(plan: QueryPlan, searcher) -> None:
    """Let a word typed in kana only find the proper nouns that read that way."""
    for clause in plan.clauses:
        for c in clause.alternatives or [clause]:
            if c.phrase or not is_kana(c.text):
                continue
            found = reading_terms(searcher, c.text)
            if not found:
                continue
            typed = _word_alt(c.morphs)
            typed.phrase = len(typed.terms) > 1
            alts = [typed] + [Alt((t,), ((),), "reading", t) for t in found]
            c.units = [Unit(c.text, alts)]


# --- plan -> Whoosh query -----------------------------------------------------------

TEXT, GRAMS = ranking.TEXT, "grams"


def prune(q: wq.Query, r: Ranker) -> wq.Query:
    """Drop the parts of q that cannot match because a term is not in the index.

    A query word is looked for in several fields and ways; most of those terms are
    absent, and dropping them keeps the query (and --explain) short.
    """
    if isinstance(q, wq.Term):
        return q if r.known(q.fieldname, q.text) else wq.NullQuery
    if isinstance(q, wq.Phrase):
        return q if all(r.known(q.fieldname, w) for w in q.words) else wq.NullQuery
    if isinstance(q, wq.And):
        subs = [prune(c, r) for c in q.subqueries]
        if any(c is wq.NullQuery for c in subs):
            return wq.NullQuery
        return subs[0] if len(subs) == 1 else q.__class__(subs, boost=q.boost)
    if isinstance(q, (wq.Or, wq.DisjunctionMax)):
        subs = [c for c in (prune(c, r) for c in q.subqueries) if c is not wq.NullQuery]
        if not subs:
            return wq.NullQuery
        if len(subs) == 1 and q.boost == 1.0:
            return subs[0]
        return q.__class__(subs, boost=q.boost)
    return q


def _term_query(term: str, parts: tuple[str, ...], weight: float) -> wq.Query:
    """Match one term in the article (title and body as one), its title, or its keywords."""
    found = wq.Or([wq.Term(TEXT, term, boost=weight),
                  wq.Term("title", term, boost=weight * ranking.TITLE_WEIGHT),
                  wq.Term("keywords", term, boost=weight * ranking.KEYWORDS_WEIGHT)])
    if len(parts) > 1:
        # a compound written differently still matches through its A units, in order
        found = wq.DisjunctionMax([found, wq.Phrase(TEXT, list(parts),
                                                    boost=weight * ranking.PARTS_WEIGHT)])
    return found


def _alt_query(alt: Alt, weight: float) -> wq.Query:
    weight *= ranking.VIA_WEIGHT.get(alt.via, 1.0)
    if alt.phrase and len(alt.sequence()) > 1:
        return wq.Phrase(TEXT, alt.sequence(), boost=weight)
    parts = [_term_query(t, p, weight) for t, p in zip(alt.terms, alt.parts)]
    return parts[0] if len(parts) == 1 else wq.And(parts)


def _unit_query(unit: Unit) -> wq.Query:
    alts = [_alt_query(a, unit.weight) for a in unit.alts]
    return alts[0] if len(alts) == 1 else wq.DisjunctionMax(alts)


def _clause_query(clause: Clause, conjunction: type) -> wq.Query:
    if clause.alternatives:
        return wq.Or([_clause_query(c, conjunction) for c in clause.alternatives])
    parts = [_unit_query(u) for u in clause.units]
    return parts[0] if len(parts) == 1 else conjunction(parts)


def _split_terms(plan: QueryPlan) -> dict[str, float]:
    """The words as typed with compounds split into their A units (empty: no compound)."""
    terms: dict[str, float] = {}
    compound = False
    for unit in (u for c in plan.clauses if not c.phrase for u in c.all_units()):
        for term, parts in zip(unit.alts[0].terms, unit.alts[0].parts):
            compound = compound or len(parts) > 1
            for t in parts or (term,):
                terms[t] = max(terms.get(t, 0.0), unit.weight)
    return terms if compound else {}


def _split_query(plan: QueryPlan, conjunction: type) -> wq.Query | None:
    """Every ("split") or any ("split_any") A unit of the words, each on its own."""
    terms = _split_terms(plan)
    if not terms:
        return None
    parts = [_term_query(t, (), w) for t, w in terms.items()]
    return parts[0] if len(parts) == 1 else conjunction(parts)


def _chars_query(plan: QueryPlan) -> wq.Query | None:
    """Articles holding every character bigram of a clause as typed (a substring search)."""
    per_clause = []
    for clause in plan.clauses:
        if clause.phrase:
            continue  # a quoted phrase is never loosened
        grams = sorted({g for g in char_grams(clause.text) if len(g) == 2})
        if grams:
            per_clause.append(wq.And([wq.Term(GRAMS, g) for g in grams]))
    if not per_clause:
        return None
    return per_clause[0] if len(per_clause) == 1 else wq.Or(per_clause)


def to_whoosh(plan: QueryPlan, mode: str = "and") -> wq.Query | None:
    """Return the Whoosh query that decides which articles match.

    mode "and": every clause; "or": any word; "split": every part of the words, with
    compounds split into their A units; "split_any": any such part; "chars": the
    characters of a clause as typed. None when a mode does not apply.
    """
    if not plan.clauses:
        return wq.Every()
    if mode == "and":
        parts = [_clause_query(c, wq.And) for c in plan.clauses]
        return parts[0] if len(parts) == 1 else wq.And(parts)
    if mode == "or":
        parts = []
        for c in plan.clauses:
            if c.alternatives or c.phrase:
                parts.append(_clause_query(c, wq.Or))
            else:
                parts.extend(_unit_query(u) for u in c.units)
        return parts[0] if len(parts) == 1 else wq.Or(parts)
    if mode == "split":
        return _split_query(plan, wq.And)
    if mode == "split_any":
        return _split_query(plan, wq.Or)
    if mode == "chars":
        return _chars_query(plan)
    raise ValueError(f"unknown mode {mode!r}")


def scoring_query(plan: QueryPlan, match: wq.Query) -> wq.Query:
    """Add the character-bigram score of what was typed to the query that matches.

    Search scores it only over the documents `match` found: the bigrams rank, never match.
    """
    grams = Counter(g for c in plan.clauses for g in char_grams(c.text))
    if not grams or isinstance(match, wq.Every):
        return match
    return wq.Or([match] + [wq.Term(GRAMS, g, boost=ranking.GRAMS_WEIGHT * n)
                            for g, n in sorted(grams.items())])


def filter_query(filters: dict[str, list]) -> wq.Query | None:
    """Return the query that restricts results to the filters (OR within, AND across)."""
    groups = []
    for name, values in filters.items():
        if name == "prefecture":
            terms = [wq.Term("prefecture", v) for v in values]
        elif name == "category":
            terms = [wq.Term("categories", v) for v in values]
        elif name == "year":
            terms = [wq.NumericRange("year", y, y) for y in values]
        else:
            continue
        groups.append(wq.Or(terms) if len(terms) > 1 else terms[0])
    if not groups:
        return None
    return wq.And(groups) if len(groups) > 1 else groups[0]


def exclusion_query(plan: QueryPlan) -> wq.Query | None:
    """Return the query of documents to drop (-word)."""
    if not plan.excluded:
        return None
    return wq.Or([_clause_query(c, wq.And) for c in plan.excluded])


# --- running --------------------------------------------------------------------------


def _check_paging(page: int, per_page: int, sort: str) -> None:
    if not isinstance(page, int) or page < 1 or page > MAX_PAGE:
        raise BadQuery(f"ページ番号は 1 から {MAX_PAGE} の整数で指定してください。")
    if not isinstance(per_page, int) or per_page < 1 or per_page > MAX_PER_PAGE:
        raise BadQuery(f"表示件数は 1 から {MAX_PER_PAGE} の整数で指定してください。")
    if sort not in SORTS:
        raise BadQuery("並び順は relevance（関連度）か date（日付）を指定してください。")


def relaxed_message(plan: QueryPlan, mode: str = "or") -> str:
    """The Japanese note shown when the query had to be relaxed to find anything."""
    words = " ".join(c.text for c in plan.clauses)
    if mode in ("split", "split_any"):
        parts = "・".join(_split_terms(plan))
        if mode == "split":
            return f"「{words}」の一致がないため、複合語を分けて（{parts}）検索しています。"
        return f"「{words}」の一致がないため、複合語を分けた語（{parts}）の一部で検索しています。"
    if mode == "chars":
        return f"「{words}」に一致する語がないため、文字の並びが一致する記事を表示しています。"
    return f"「{words}」の一致がないため、一部の語で検索しています。"


def _allowed(r: Ranker, plan: QueryPlan) -> np.ndarray | None:
    """Document numbers the filters and exclusions leave (None: every document)."""
    fq, mask = filter_query(plan.filters), exclusion_query(plan)
    if fq is None and mask is None:
        return None
    allowed = r.docs(fq if fq is not None else wq.Every())
    if mask is not None:
        allowed = np.setdiff1d(allowed, r.docs(prune(mask, r)), assume_unique=True)
    return allowed


def _match(r: Ranker, plan: QueryPlan, allowed: np.ndarray | None
           ) -> tuple[str, wq.Query | None, np.ndarray]:
    """Find the strictest reading of the plan that matches: (mode, query, documents)."""
    if not plan.clauses:
        docs = r.docs(wq.Every())
        if allowed is not None:
            docs = np.intersect1d(docs, allowed, assume_unique=True)
        return "filters", wq.Every(), docs
    modes = [] if plan.question else ["and"]
    if plan.question or len(plan.units()) > 1 or any(c.alternatives for c in plan.clauses):
        modes.append("or")
    modes += ["split", "split_any", "chars"]
    seen: set[str] = set()
    q = None
    for mode in modes:
        q = to_whoosh(plan, mode)
        if q is None:
            continue
        q = prune(q, r)
        if q is wq.NullQuery or str(q) in seen:
            continue
        seen.add(str(q))
        docs = r.docs(q)
        if allowed is not None:
            docs = np.intersect1d(docs, allowed, assume_unique=True)
        if mode == "chars":
            docs = _containing(r, plan, docs)
        if len(docs):
            return mode, q, docs
    return "none", q, np.zeros(0, dtype=np.int64)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").lower()


def _containing(r: Ranker, plan: QueryPlan, docs: np.ndarray) -> np.ndarray:
    """Keep the documents whose title or body holds a clause as typed (bigrams only suggest it)."""
    typed = [_fold(c.text) for c in plan.clauses if not c.phrase]
    keep = []
    for d in docs[:MAX_SCANNED]:
        stored = r.searcher.stored_fields(int(d))
        text = _fold(stored.get("title", "")) + "\n" + _fold(stored.get("body", ""))
        if any(t in text for t in typed):
            keep.append(d)
    return np.array(keep, dtype=np.int64)


def _top(r: Ranker, q: wq.Query, docs: np.ndarray, limit: int, sort: str
         ) -> list[tuple[int, float]]:
    """Score every matched document; return the best `limit` (or the newest) with scores."""
    scores = r.score(q)[docs]
    if sort == "date":
        dates = r.column("date")
        keys = np.array([dates[d] or "" for d in docs], dtype=object)
        # newest first; undated last; ties by score, then index order
        order = sorted(range(len(docs)), key=lambda i: (keys[i] == "", _desc(keys[i]),
                                                          -scores[i], docs[i]))[:limit]
    else:
        order = np.lexsort((docs, -scores))[:limit]
    return [(int(docs[i]), float(scores[i])) for i in order]


def _desc(text: str) -> tuple[int, ...]:
    """A key that sorts strings in descending order."""
    return tuple(-ord(c) for c in text)


def _hit_data(stored: dict, score: float, terms: set[str], literals: list[str]) -> dict:
    snippet = make_snippet(stored.get("body", ""), terms, literals=literals)
    return {
        "id": stored["id"],
        "title": stored.get("title", ""),
        "score": round(score, 4),
        "snippet": snippet["text"],
        "snippet_html": snippet["html"],
        "date": stored.get("date"),
        "year": stored.get("year"),
        "prefecture": stored.get("prefecture"),
        "municipality": stored.get("municipality"),
        "categories": [c for c in stored.get("categories", "").split(",") if c],
        "tags": [t for t in stored.get("tags", "").split(",") if t],
        "url": stored.get("url"),
    }


def _field_query(alt: Alt, fieldname: str) -> wq.Query:
    """The query of one alternative inside one field (for explaining a hit)."""
    if alt.phrase and len(alt.sequence()) > 1 and fieldname != "keywords":
        return wq.Phrase(fieldname, alt.sequence())
    terms = []
    for term, parts in zip(alt.terms, alt.parts):
        q = wq.Term(fieldname, term)
        if len(parts) > 1 and fieldname != "keywords":
            q = wq.Or([q, wq.Phrase(fieldname, list(parts))])
        terms.append(q)
    return terms[0] if len(terms) == 1 else wq.And(terms)


def explain_hits(r: Ranker, plan: QueryPlan, docnums: list[int], mode: str) -> dict[int, list]:
    """For each hit: which word matched in which field, and how (word/synonym/reading/year)."""
    out: dict[int, list] = {d: [] for d in docnums}
    if mode == "chars":
        for clause in plan.clauses:
            typed = _fold(clause.text)
            for d in docnums:
                stored = r.searcher.stored_fields(d)
                for name in ("title", "body"):
                    if typed in _fold(stored.get(name, "")):
                        out[d].append({"term": clause.text, "field": name, "via": "chars"})
        return out
    for unit in plan.units():
        for alt in unit.alts:
            for name in ("title", "body", "keywords"):
                found = r.docs(prune(_field_query(alt, name), r))
                for d in np.intersect1d(found, docnums):
                    entry = {"term": alt.text, "field": name, "via": alt.via}
                    if entry not in out[int(d)]:
                        out[int(d)].append(entry)
    return out


def _suggestions(r: Ranker, plan: QueryPlan, allowed: np.ndarray | None) -> list[dict]:
    """もしかして: the query with each word that finds (almost) nothing corrected."""
    text, changes = plan.text, []
    for clause in plan.clauses:
        if clause.phrase or clause.alternatives or not (
                suggest.MIN_CHARS <= len(clause.text) <= suggest.MAX_CHARS):
            continue
        if any(a.via == "reading" for u in clause.units for a in u.alts):
            continue  # a kana word that already reads as a name is not misspelt
        docs = r.docs(prune(_clause_query(clause, wq.And), r))
        if allowed is not None:
            docs = np.intersect1d(docs, allowed, assume_unique=True)
        if len(docs) >= FEW_RESULTS:
            continue
        better = correct_word(r, clause.text, len(docs), allowed)
        if better and better != clause.text:
            changes.append({"from": clause.text, "to": better})
            text = text.replace(clause.text, better, 1)
    if not changes:
        return []
    return [{"query": text, "changes": changes, "message": f"もしかして: {text}"}]


def search(index: OpenIndex, text: str, *, filters: dict[str, list[str]] | None = None,
           page: int = 1, per_page: int = 10, sort: str = "relevance",
           snippets: bool = True, explain: bool = False,
           synonyms: SynonymTable | str | None = None) -> dict:
    """Run a query and return plain data: hits, total, facets, how the query was read.

    `synonyms` is a SynonymTable or the path of a synonym file (see kb/synonyms.py);
    `explain` adds to each hit the words that matched and where ("matched").
    """
    started = time.perf_counter()
    _check_paging(page, per_page, sort)
    if synonyms is not None and not isinstance(synonyms, SynonymTable):
        synonyms = load_synonyms(synonyms)
    plan = plan_query(text, filters, synonyms=synonyms)
    r = ranking.ranker(index)
    add_readings(plan, r.searcher)
    allowed = _allowed(r, plan)
    mode, match, docs = _match(r, plan, allowed)
    relaxed = None
    if mode in ("or", "split", "split_any", "chars") and not (mode == "or" and plan.question):
        relaxed = {"mode": mode, "message": relaxed_message(plan, mode)}

    hits: list[dict] = []
    first = (page - 1) * per_page
    if len(docs) and first < len(docs):
        q = match if mode in ("chars", "filters") else prune(scoring_query(plan, match), r)
        top = _top(r, q, docs, page * per_page, sort)[first:first + per_page]
        terms = plan.match_terms()
        literals = [c.text for c in plan.clauses] if mode == "chars" else []
        for docnum, score in top:
            stored = r.searcher.stored_fields(docnum)
            hits.append(_hit_data(stored, score, terms, literals) if snippets else
                        {"id": stored["id"], "title": stored.get("title", ""),
                         "score": round(score, 4)})
        if explain:
            matched = explain_hits(r, plan, [d for d, _ in top], mode)
            for hit, (docnum, _) in zip(hits, top):
                hit["matched"] = matched[docnum]
    suggestions = []
    if plan.clauses and (len(docs) < FEW_RESULTS or relaxed is not None):
        suggestions = _suggestions(r, plan, allowed)
    total = len(docs)
    return {
        "query": plan.text,
        "total": total,
        "page": page,
        "per_page": per_page,
        "pages": max(1, math.ceil(total / per_page)),
        "sort": sort,
        "filters": plan.filters,
        "relaxed": relaxed,
        "question": plan.question,
        "ignored": plan.ignored,
        "expansions": plan.expansions(),
        "suggestions": suggestions,
        "hits": hits,
        "facets": facet_counts(r.searcher, docs, plan.filters),
        "took_ms": round((time.perf_counter() - started) * 1000, 1),
    }


def matched_label(matched: list[dict]) -> str:
    """Say compactly which words matched where: 窓口(本文), 業務委託(タイトル・同義語)."""
    fields: dict[tuple[str, str], list[str]] = {}
    for m in matched:
        fields.setdefault((m["term"], m["via"]), []).append(FIELD_LABELS.get(m["field"], m["field"]))
    out = []
    for (term, via), names in fields.items():
        notes = list(dict.fromkeys(names))
        if via in VIA_LABELS:
            notes.append(VIA_LABELS[via])
        out.append(f"{term}({'・'.join(notes)})")
    return ", ".join(out)
