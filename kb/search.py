"""A query string in, ranked hits with snippets and facets out (plain data).

`plan_query` (kb/query.py) turns what a user typed into a `QueryPlan` (no index
needed), and `search` runs a plan against an open index; `kb search --explain` prints
the plan.

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
import time
import unicodedata

import numpy as np
from whoosh import query as wq

from . import ranking, suggest
from .errors import BadQuery
from .facets import facet_counts
from .index import OpenIndex
from .query import (FILTERS, MAX_QUERY_CHARS, Alt, Clause, QueryPlan, Unit, add_readings,
                    clause_query, exclusion_query, field_query, filter_query, plan_query, prune,
                    scoring_query, split_terms, to_whoosh)
from .ranking import Ranker
from .snippets import make_snippet
from .suggest import correct_word
from .synonyms import SynonymTable
from .synonyms import load as load_synonyms

__all__ = ["FILTERS", "MAX_PAGE", "MAX_PER_PAGE", "MAX_QUERY_CHARS", "Alt", "Clause",
           "QueryPlan", "Unit", "explain_hits", "matched_label", "plan_query", "prune",
           "relaxed_message", "search", "to_whoosh"]

MAX_PER_PAGE = 100
MAX_PAGE = 1000
FEW_RESULTS = 3  # fewer hits than this, and spelling suggestions are looked for
MAX_SCANNED = 2000  # articles read to confirm a search by characters
SORTS = ("relevance", "date")
FIELD_LABELS = {"title": "タイトル", "body": "本文", "keywords": "キーワード"}
VIA_LABELS = {"synonym": "同義語", "reading": "読み", "year": "年度の言い換え", "chars": "文字列"}


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
        parts = "・".join(split_terms(plan))
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
                found = r.docs(prune(field_query(alt, name), r))
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
        docs = r.docs(prune(clause_query(clause, wq.And), r))
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


WARM_SECONDS = 0.3  # start-up time spent reading the most common posting lists


def warm_caches(index_dir, seconds: float = WARM_SECONDS) -> dict:
    """Load what every search needs, and the commonest postings, before serving.

    Run in the server before it forks its workers: field lengths, facet tables and
    the posting lists of the words found in most articles (as the build recorded
    them) land in the per-commit cache (kb.readercache) that the workers inherit, so
    no worker's first searches pay for them. Returns what was loaded.
    """
    from .index import common_terms

    try:
        index = OpenIndex(index_dir)
    except Exception:  # the server reports a missing or broken index itself
        return {}
    try:
        search(index, "地方")  # lengths, facets, readings: the fixed costs of a search
        r = ranking.ranker(index)
        common = common_terms(index.generation_path)
        # alternate the fields, commonest first, until the time is up
        order = [(field, term) for pair in zip(*(
            [(f, t) for t in common.get(f, [])] for f in ("body", "title", "grams")))
            for field, term in pair]
        deadline, loaded = time.monotonic() + seconds, 0
        for field, term in order:
            if time.monotonic() > deadline:
                break
            r.postings(ranking.TEXT if field in ranking.TEXT_FIELDS else field, term)
            loaded += 1
        return {"terms": loaded, "of": len(order)}
    finally:
        index.close()
