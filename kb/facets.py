"""Facet counts (prefecture, category, fiscal year) over the articles a search matched.

Whoosh's grouped search scores every match to count facets. Instead each searcher
keeps one small table of every article's facet values (read once from the index's
columns and postings), and a search counts its matched document numbers against it.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from .years import year_label

FACETS = ("prefecture", "category", "year")


def _decode(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _column(reader, fieldname: str) -> list:
    if fieldname not in reader.schema or not reader.has_column(fieldname):
        return []
    return list(reader.column_reader(fieldname, translate=True))


def facet_table(searcher) -> dict[str, list]:
    """Return {facet: values per document number}, cached on the searcher."""
    table = getattr(searcher, "_kb_facets", None)
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
    searcher._kb_facets = table
    return table


def facet_counts(searcher, docnums: Iterable[int], filters: dict) -> dict:
    """Count each facet's values over the matched documents, chosen filters marked."""
    table = facet_table(searcher)
    out = {}
    for name in FACETS:
        values = table[name]
        counts = Counter(v for d in docnums if d < len(values) for v in values[d])
        items = []
        for value, count in counts.items():
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
