"""What one committed state of an index holds, cached once per process for every thread.

The server answers from several threads, each with its own Whoosh searcher (Whoosh
readers are not safe to share). Posting arrays, field lengths and facet tables read
from one commit never change, so they are kept here, keyed by index folder and
commit generation, instead of once per thread: the first thread to read a term pays,
the others reuse it, and memory holds one copy.
"""
from __future__ import annotations

import threading
import weakref
from collections import OrderedDict

MAX_STATES = 3  # the current commit plus the ones threads may still be finishing on


class ReaderCache:
    """Caches of one commit: postings, phrase matches, lengths and any derived tables."""

    def __init__(self):
        self.lock = threading.Lock()
        self.postings: OrderedDict = OrderedDict()
        self.postings_size = 0
        self.phrases: OrderedDict = OrderedDict()
        self.known: dict = {}  # (field, term) -> whether the index holds it
        self.tables: dict = {}  # field lengths, columns, facet tables ...


_STATES: OrderedDict[tuple, ReaderCache] = OrderedDict()  # the latest, kept alive
_LIVE: "weakref.WeakValueDictionary[tuple, ReaderCache]" = weakref.WeakValueDictionary()
_STATES_LOCK = threading.Lock()


def state_key(searcher) -> tuple:
    """Return (index folder, commit generation, segments) for what the searcher sees."""
    ix = getattr(searcher, "_ix", None)
    folder = getattr(getattr(ix, "storage", None), "folder", None)
    reader = searcher.reader()
    # the segment ids too: a folder can be replaced by another index at generation 1
    segments = tuple(getattr(leaf.segment(), "segid", id(leaf)) if hasattr(leaf, "segment")
                     else id(leaf) for leaf, _ in reader.leaf_readers())
    return folder, reader.generation(), segments


def reader_cache(searcher) -> ReaderCache:
    """Return the shared cache for the searcher's commit (made on first use)."""
    key = state_key(searcher)
    with _STATES_LOCK:
        # a cache still held by some thread's searcher is reused even when it has
        # left the short list of recent ones
        found = _STATES.get(key) or _LIVE.get(key)
        if found is None:
            found = _LIVE[key] = ReaderCache()
        _STATES[key] = found
        _STATES.move_to_end(key)
        while len(_STATES) > MAX_STATES:
            _STATES.popitem(last=False)
        return found
