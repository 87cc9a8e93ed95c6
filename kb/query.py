"""What a query means: the plan of what someone typed, and the Whoosh queries it becomes.

`plan_query` reads the syntax (words, "phrases", -exclusions, filters), groups each
chunk's Sudachi C units into words (`Unit`) and lists every way a word may be found
(`Alt`): as typed, through the synonym list, as another spelling of a year
(令和5年度 = 2023年度), or, once an index is at hand (`add_readings`), through the
readings of its proper nouns (かけがわ = 掛川). It also decides whether the query is a
natural-language question. `to_whoosh` turns a plan into the query of one matching
mode; kb/search.py runs them. No index is needed until `add_readings` and `prune`.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

from whoosh import query as wq

from . import ranking
from .analysis import Morph, analyze, char_grams, is_kana
from .errors import BadQuery
from .ranking import Ranker
from .readings import reading_terms
from .synonyms import SynonymTable
from .years import parse_year, year_matches

MAX_QUERY_CHARS = 1000
QUESTION_MIN_WORDS = 4  # this many words joined by particles read as a sentence
# Filter names as typed (English and Japanese) -> the canonical filter name.
FILTER_ALIASES = {
    "prefecture": "prefecture", "pref": "prefecture", "都道府県": "prefecture",
    "category": "category", "cat": "category", "カテゴリ": "category", "分類": "category",
    "year": "year", "年度": "year",
}
FILTERS = ("prefecture", "category", "year")
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


def clause_query(clause: Clause, conjunction: type) -> wq.Query:
    if clause.alternatives:
        return wq.Or([clause_query(c, conjunction) for c in clause.alternatives])
    parts = [_unit_query(u) for u in clause.units]
    return parts[0] if len(parts) == 1 else conjunction(parts)


def split_terms(plan: QueryPlan) -> dict[str, float]:
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
    terms = split_terms(plan)
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
            per_clause.append(wq.And([wq.Term(GRAMS, g) for g in grams]) if len(grams) > 1
                              else wq.Term(GRAMS, grams[0]))
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
        parts = [clause_query(c, wq.And) for c in plan.clauses]
        return parts[0] if len(parts) == 1 else wq.And(parts)
    if mode == "or":
        parts = []
        for c in plan.clauses:
            if c.alternatives or c.phrase:
                parts.append(clause_query(c, wq.Or))
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
    return wq.Or([clause_query(c, wq.And) for c in plan.excluded])


def field_query(alt: Alt, fieldname: str) -> wq.Query:
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
