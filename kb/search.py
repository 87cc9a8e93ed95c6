"""A query string in, ranked hits with snippets and facets out (plain data).

`plan_query` turns what a user typed into a `QueryPlan` (no index needed), and
`search` runs a plan against an open index; `kb search --explain` prints the plan.
"""
from __future__ import annotations

import math
import re
import time
import unicodedata
from dataclasses import dataclass, field

from whoosh import query as wq
from whoosh import sorting

from .analysis import Morph, analyze
from .errors import BadQuery
from .index import OpenIndex
from .snippets import make_snippet
from .years import parse_year, year_label

MAX_QUERY_CHARS = 1000
MAX_PER_PAGE = 100
MAX_PAGE = 1000
TITLE_BOOST = 2.0
KEYWORDS_BOOST = 1.0
SORTS = ("relevance", "date")
# Filter names as typed (English and Japanese) -> the canonical filter name.
FILTER_ALIASES = {
    "prefecture": "prefecture", "pref": "prefecture", "都道府県": "prefecture",
    "category": "category", "cat": "category", "カテゴリ": "category", "分類": "category",
    "year": "year", "年度": "year",
}
FILTERS = ("prefecture", "category", "year")
_QUOTES = {'"': '"', "“": "”", "「": "」", "『": "』", "＂": "＂"}
_SPACE = re.compile(r"[\s\u3000]+")


# --- the plan -------------------------------------------------------------------------


@dataclass
class Clause:
    """One thing the user asked for: a word (several C units) or a quoted phrase."""

    text: str
    morphs: list[Morph]
    phrase: bool = False

    @property
    def terms(self) -> list[str]:
        return [m.text for m in self.morphs]


@dataclass
class QueryPlan:
    """What a query string means, before it meets an index."""

    text: str
    clauses: list[Clause] = field(default_factory=list)
    excluded: list[Clause] = field(default_factory=list)
    filters: dict[str, list] = field(default_factory=dict)

    def match_terms(self) -> set[str]:
        """Every term a matching document may contain (for highlighting)."""
        out: set[str] = set()
        for clause in self.clauses:
            for m in clause.morphs:
                out.add(m.text)
                out.update(m.parts)
        return out

    def describe(self) -> dict:
        """A readable form of the plan for --explain and the API."""
        return {
            "clauses": [{"text": c.text, "terms": c.terms, "phrase": c.phrase}
                        for c in self.clauses],
            "excluded": [{"text": c.text, "terms": c.terms} for c in self.excluded],
            "filters": self.filters,
            "whoosh": str(to_whoosh(self, "and")) if self.clauses else None,
        }


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


def plan_query(text: str, filters: dict[str, list[str]] | None = None) -> QueryPlan:
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
        if isinstance(values, (str, int)):
            values = [values]
        if not isinstance(values, (list, tuple)):
            raise BadQuery(f"絞り込み条件「{name}」の値が正しくありません。")
        for value in values:
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise BadQuery(f"絞り込み条件「{name}」の値が正しくありません。")
            value = str(value)
            if value.strip():
                _read_filter(canonical, value.strip(), plan.filters)
    pending_or = False
    for chunk, is_phrase, negate in _split_chunks(text):
        if not is_phrase and not negate:
            if chunk == "OR" and plan.clauses:
                pending_or = True
                continue
            if chunk == "AND":
                continue
            if chunk == "NOT":
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
        if negate:
            plan.excluded.append(clause)
        elif pending_or:
            prev = plan.clauses[-1]
            # "A OR B" becomes one clause whose alternatives are A and B
            alternatives = getattr(prev, "alternatives", [prev])
            merged = Clause(f"{prev.text} OR {chunk}", prev.morphs + morphs)
            merged.alternatives = alternatives + [clause]  # type: ignore[attr-defined]
            plan.clauses[-1] = merged
        else:
            plan.clauses.append(clause)
        pending_or = False
    if not plan.clauses and not plan.filters:
        raise BadQuery("検索語を入力してください。")
    return plan


# --- plan -> Whoosh query -----------------------------------------------------------


def _phrase_terms(morphs: list[Morph]) -> list[str]:
    """A-unit terms in order, which sit at consecutive index positions."""
    out: list[str] = []
    for m in morphs:
        out.extend(m.parts or (m.text,))
    return out


def _morph_query(m: Morph) -> wq.Query:
    """Match one query word in any text field, or its A units as a phrase."""
    alts: list[wq.Query] = [
        wq.Term("title", m.text, boost=TITLE_BOOST),
        wq.Term("body", m.text),
        wq.Term("keywords", m.text, boost=KEYWORDS_BOOST),
    ]
    if len(m.parts) > 1:
        alts.append(wq.Phrase("title", list(m.parts), boost=TITLE_BOOST))
        alts.append(wq.Phrase("body", list(m.parts)))
    return wq.Or(alts)


def _clause_query(clause: Clause, conjunction: type) -> wq.Query:
    alternatives = getattr(clause, "alternatives", None)
    if alternatives:
        return wq.Or([_clause_query(c, conjunction) for c in alternatives])
    if clause.phrase and len(clause.morphs) > 1:
        words = _phrase_terms(clause.morphs)
        return wq.Or([wq.Phrase("title", words, boost=TITLE_BOOST), wq.Phrase("body", words)])
    parts = [_morph_query(m) for m in clause.morphs]
    return parts[0] if len(parts) == 1 else conjunction(parts)


def to_whoosh(plan: QueryPlan, mode: str = "and") -> wq.Query:
    """Return the Whoosh query for a plan: every clause required ("and") or any ("or")."""
    if not plan.clauses:
        return wq.Every()
    if mode == "and":
        return wq.And([_clause_query(c, wq.And) for c in plan.clauses])
    # OR mode: every word of every clause is optional, so long questions still match
    parts: list[wq.Query] = []
    for c in plan.clauses:
        if c.phrase or getattr(c, "alternatives", None):
            parts.append(_clause_query(c, wq.Or))
        else:
            parts.extend(_morph_query(m) for m in c.morphs)
    return wq.Or(parts)


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


def _facets() -> dict:
    return {
        "prefecture": sorting.FieldFacet("prefecture"),
        "category": sorting.FieldFacet("categories", allow_overlap=True),
        "year": sorting.FieldFacet("year"),
    }


def _facet_counts(results, filters: dict) -> dict:
    out = {}
    for name in ("prefecture", "category", "year"):
        try:
            groups = results.groups(name)
        except KeyError:
            groups = {}
        items = []
        for value, count in groups.items():
            if value in (None, "", b""):
                continue
            if name == "year":
                item = {"value": int(value), "label": year_label(int(value)), "count": count}
            else:
                item = {"value": value, "label": value, "count": count}
            item["selected"] = item["value"] in filters.get(name, [])
            items.append(item)
        if name == "year":
            items.sort(key=lambda x: -x["value"])
        else:
            items.sort(key=lambda x: (-x["count"], x["value"]))
        out[name] = items
    return out


def _check_paging(page: int, per_page: int, sort: str) -> None:
    if not isinstance(page, int) or page < 1 or page > MAX_PAGE:
        raise BadQuery(f"ページ番号は 1 から {MAX_PAGE} の整数で指定してください。")
    if not isinstance(per_page, int) or per_page < 1 or per_page > MAX_PER_PAGE:
        raise BadQuery(f"表示件数は 1 から {MAX_PER_PAGE} の整数で指定してください。")
    if sort not in SORTS:
        raise BadQuery("並び順は relevance（関連度）か date（日付）を指定してください。")


def _hit_data(hit, plan: QueryPlan, terms: set[str]) -> dict:
    stored = hit.fields()
    snippet = make_snippet(stored.get("body", ""), terms)
    return {
        "id": stored["id"],
        "title": stored.get("title", ""),
        "score": round(float(hit.score or 0.0), 4),
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


def relaxed_message(plan: QueryPlan) -> str:
    """The Japanese note shown when AND found nothing and OR was used."""
    words = " ".join(c.text for c in plan.clauses)
    return f"「{words}」の一致がないため、一部の語で検索しています。"


def search(index: OpenIndex, text: str, *, filters: dict[str, list[str]] | None = None,
           page: int = 1, per_page: int = 10, sort: str = "relevance",
           snippets: bool = True) -> dict:
    """Run a query and return plain data: hits, total, facets, how the query was read."""
    started = time.perf_counter()
    _check_paging(page, per_page, sort)
    plan = plan_query(text, filters)
    searcher = index.searcher()
    mask = exclusion_query(plan)
    fq = filter_query(plan.filters)
    kwargs = dict(filter=fq, mask=mask, groupedby=_facets(), maptype=sorting.Count,
                  limit=page * per_page)
    if sort == "date":
        kwargs["sortedby"] = sorting.FieldFacet("date", reverse=True)
    relaxed = None
    q = to_whoosh(plan, "and")
    results = searcher.search(q, **kwargs)
    if results.scored_length() == 0 and len(plan.clauses) and _term_count(plan) > 1:
        q = to_whoosh(plan, "or")
        results = searcher.search(q, **kwargs)
        if results.scored_length():
            relaxed = {"mode": "or", "message": relaxed_message(plan)}
    total = len(results)
    terms = plan.match_terms()
    first = (page - 1) * per_page
    hits = [_hit_data(h, plan, terms) if snippets else {"id": h["id"], "title": h["title"],
                                                         "score": round(float(h.score or 0), 4)}
            for h in results[first:first + per_page]]
    return {
        "query": plan.text,
        "total": total,
        "page": page,
        "per_page": per_page,
        "pages": max(1, math.ceil(total / per_page)),
        "sort": sort,
        "filters": plan.filters,
        "relaxed": relaxed,
        "hits": hits,
        "facets": _facet_counts(results, plan.filters),
        "took_ms": round((time.perf_counter() - started) * 1000, 1),
    }


def _term_count(plan: QueryPlan) -> int:
    return sum(len(c.morphs) for c in plan.clauses)
