"""Facet counts (prefecture, category, fiscal year) over the articles a search matched.

Whoosh's grouped search scores every match to count facets. Instead each commit of
the index has one small table of every article's facet values (read once from the
index's columns and postings, shared by every thread), and a search counts its
matched document numbers against it with array operations.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .readercache import reader_cache
from .years import year_label

FACETS = ("prefecture", "category", "year")


def _decode(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _column(reader, fieldname: str) -> list:
    if fieldname not in reader.schema or not reader.has_column(fieldname):
        return []
    return list(reader.column_reader(fieldname, translate=True))


def facet_table(searcher) -> dict[str, list]:
    """Return {facet: values per document number}, cached for the searcher's commit."""
    cache = reader_cache(searcher)
    table = cache.tables.get("facets")
    if table is not None:
        return table
    reader = searcher.reader()
    categories: list[list[str]] = [[] for _ in range(reader.doc_count_all())]
    if "categories" in reader.schema:
        for term in reader.lexicon("categories"):
            value = _decode(term)
            for docnum in reader.postings("categories", term).all_ids():
                categories[docnum].append(value)
    table = {
        "prefecture": [[v] if v else [] for v in _column(reader, "prefecture")],
        "year": [[v] if v else [] for v in _column(reader, "year")],
        "category": categories,
    }
    cache.tables["facets"] = table
    return table


def _pairs(searcher, name: str) -> tuple[list, np.ndarray, np.ndarray]:
    """Return (distinct values, document of each pair, value code of each pair) of a facet."""
    cache = reader_cache(searcher)
    found = cache.tables.get(("facet pairs", name))
    if found is None:
        codes: dict = {}
        docs, values = [], []
        for docnum, held in enumerate(facet_table(searcher)[name]):
            for value in held:
                docs.append(docnum)
                values.append(codes.setdefault(value, len(codes)))
        found = (list(codes), np.array(docs, dtype=np.int64), np.array(values, dtype=np.int64))
        cache.tables[("facet pairs", name)] = found
    return found


def facet_counts(searcher, docnums: Iterable[int], filters: dict) -> dict:
    """Count each facet's values over the matched documents, chosen filters marked."""
    size = searcher.reader().doc_count_all()
    docnums = np.fromiter(docnums, dtype=np.int64)
    matched = np.zeros(size, dtype=bool)
    matched[docnums[(docnums >= 0) & (docnums < size)]] = True
    out = {}
    for name in FACETS:
        values, pair_docs, pair_values = _pairs(searcher, name)
        counts = np.bincount(pair_values[matched[pair_docs]], minlength=len(values))
        items = []
        for code in np.flatnonzero(counts):
            value, count = values[code], int(counts[code])
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
