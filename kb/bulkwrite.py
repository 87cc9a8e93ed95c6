"""Bulk writing of one Whoosh segment whose big text fields come with ready postings.

Whoosh's SegmentWriter pools every posting as a 5-tuple, sorts them all and then
feeds them one by one through FieldWriter.add_postings (a length lookup, type
asserts and a method call per posting, and a pickle plus a zlib call per block:
zlib's set-up alone costs 20-50 microseconds, and most terms have one block of one
posting). Here the postings of the big fields are grouped by term as documents
arrive (documents come in docnum order, so each term's list is already sorted),
and each term's posting list is encoded in one go into the same W3 layout that
whoosh.codec.whoosh3 reads (pinned whoosh-reloaded 2.7.5):

    postings file, per term: b"W3Bl", then per block of <= 128 postings
        int32 +-(len(info) + len(data))   negative on the last block
        info = pickle((count, last id, max weight, compression, min len byte, max len byte))
        data = [zlib] pickle((delta-coded ids, weights, values))
    terms table (OrderedHashWriter): key ushort(field number) + term bytes,
        value W3TermInfo ("!BfIBBfII" + int64 offset + int32 length)

Two liberties, both within what the reader accepts: small blocks are stored
uncompressed (the info tuple says so and the reader honours it), and block data is
pickled with protocol 3, which stores bytes natively instead of through
codecs.encode. `exact=True` turns both off and the files come out byte for byte
as Whoosh writes them (the tests check this).

The small fields (id, keywords, categories, ...) still go through Whoosh's own
add_document and field writer; only title, body and grams are bulk-written.
"""
from __future__ import annotations

import struct
import zlib
from array import array
from collections import defaultdict
from hashlib import md5
from heapq import nlargest
from functools import partial
from itertools import groupby, starmap
from operator import itemgetter, sub
from pickle import dumps

from whoosh.codec.whoosh3 import WHOOSH3_HEADER_MAGIC
from whoosh.system import pack_ushort
from whoosh.util.numeric import length_to_byte
from whoosh.writing import SegmentWriter

BLOCK_LIMIT = 128          # postings per block, as W3Codec's default blocklimit
COMPRESSION = 3            # zlib level, as W3Codec's default
COMPRESS_MIN_BYTES = 1024  # smaller blocks are stored raw: zlib set-up costs more than it saves
DATA_PROTOCOL = 3          # pickle protocol of block data when not exact

_TERMINFO = struct.Struct("!BfIBBfIIqi")  # W3TermInfo._struct + offset (q) + length (i)
_INT = struct.Struct("!i")
_KV_LENGTHS = struct.Struct("!ii")        # filetables._lengths
_POINTER = struct.Struct("!Iq")           # filetables._pointer
_NULL = (0, 0)
_F32 = struct.Struct("f")

# Stands in for the term of the one posting a bulk field hands to add_document, so
# add_document records the field length; the pool drops it.
_LENGTH_ONLY = object()


class _LengthOnly(str):
    """A bulk field's text for add_document: one fake posting carrying the length."""

    def __new__(cls, text: str, length: int) -> "_LengthOnly":
        obj = super().__new__(cls, text)
        obj.postings = [(_LENGTH_ONLY, length, 1.0, b"")] if length else []
        return obj


class _SmallPool:
    """SegmentWriter's pool for the small fields: a plain list, sorted at the end."""

    def __init__(self):
        self.items: list = []
        self.add = self.items.append
        self.fieldnames: set[str] = set()

    def sorted_items(self) -> list:
        items = [item for item in self.items if item[1] is not _LENGTH_ONLY]
        items.sort()
        return items

    def cleanup(self):
        self.items = []


COMMON_TERMS = 2000  # per field, recorded for warming a server's posting cache


class BulkSegmentWriter:
    """Write one new segment of an index; fields in `bulk_fields` take ready postings.

    add_document(**fields) takes a Whoosh document whose bulk field values carry a
    `postings` list of (term bytes, freq, weight, value bytes) rows (as
    kb.index.PostedText does); finish() writes the segment and returns it for a TOC.
    """

    def __init__(self, ix, bulk_fields=("title", "body", "grams"), exact: bool = False,
                 compound: bool = True):
        self.writer = SegmentWriter(ix, _lk=False, compound=compound)
        self.writer.pool = self.pool = _SmallPool()
        self.schema = self.writer.schema
        for name in bulk_fields:
            if not self.schema[name].scorable:
                raise ValueError(f"bulk field {name} must be scorable (lengths drive blocks)")
        self.bulk_fields = tuple(bulk_fields)
        self.exact = exact
        self.terms: dict[str, dict[bytes, list]] = {name: defaultdict(list)
                                                     for name in bulk_fields}
        self.lengths: dict[str, bytearray] = {name: bytearray() for name in bulk_fields}
        self.postings = 0  # bulk postings held in memory (callers flush on it)
        self.common: dict[str, list[tuple[int, bytes]]] = {}  # set by finish()

    def add_document(self, **fields) -> None:
        """Add one document; its bulk fields' postings are grouped here."""
        if any(key.endswith("_boost") for key in fields):
            raise ValueError("boosts are not supported by bulk writing")
        docnum = self.writer.docnum
        for name in self.bulk_fields:
            value = fields.get(name)
            rows = getattr(value, "postings", None)
            if rows is None and value is not None:
                rows = list(self.schema[name].index(value))  # analyse it the Whoosh way
            length = 0
            if rows is not None:
                terms = self.terms[name]
                # group by term as they come (docnums arrive in increasing order): each
                # term's list is flat [docnum, weight, value, docnum, ...]
                for btext, freq, weight, vbytes in rows:
                    length += freq
                    terms[btext] += (docnum, weight, vbytes)
                self.postings += len(rows)
                if self.schema[name].stored:
                    fields.setdefault("_stored_" + name, str(value))
                fields[name] = _LengthOnly(value, length)
            self.lengths[name].append(length_to_byte(length) if length else 0)
        # a failure here leaves this document's postings grouped: cancel the segment
        self.writer.add_document(**fields)

    def finish(self):
        """Write the postings and close the segment; return it (None when empty)."""
        writer = self.writer
        if not writer.docnum:
            writer._close_segment()
            return None
        # each field's commonest terms, (articles, term): a server warms its cache with them
        self.common = {name: [(len(rows) // 3, term) for term, rows in
                              nlargest(COMMON_TERMS, terms.items(), key=lambda kv: len(kv[1]))]
                       for name, terms in self.terms.items()}
        writer.perdocwriter.close()
        pdr = writer.per_document_reader()
        fw = writer.fieldwriter
        try:
            small = {name: list(items) for name, items
                     in groupby(self.pool.sorted_items(), key=itemgetter(0))}
            bulk = [name for name in self.bulk_fields if self.terms[name]]
            for name in sorted(set(small) | set(bulk)):
                if name in small:
                    fw.add_postings(self.schema, pdr, iter(small[name]))
                else:
                    self._write_field(fw, name)
                    self.terms[name] = defaultdict(list)  # free the memory as we go
            # the terms table's hash tables, written a bucket at a time (same bytes)
            fw._tindex._write_hashes = partial(_write_hashes, fw._tindex)
            fw.close()
        finally:
            pdr.close()
        writer._close_segment()
        writer._assemble_segment()
        return writer.get_segment()

    def cancel(self) -> None:
        """Abandon the segment (its files are left for clean_files)."""
        self.writer.cancel()

    def _write_field(self, fw, name: str) -> None:
        """Write one bulk field's posting lists and term infos through fw's files."""
        fw.start_field(name, self.schema[name])
        fixedsize = self.schema[name].format.fixed_value_size()
        lengths = self.lengths[name]
        encode = _TermEncoder(fixedsize, lengths, self.exact)
        exact, protocol, float32 = self.exact, encode.protocol, encode.float32
        variable = fixedsize is None or fixedsize < 0
        terms = self.terms[name]
        postfile, tindex = fw._postfile, fw._tindex
        prefix = pack_ushort(fw._fieldid)
        offset = postfile.tell()
        parts, rows = [], []
        for btext in sorted(terms):
            entry = terms[btext]
            if len(entry) == 3:
                # one posting (most terms): _TermEncoder's work, inlined
                d, w, v = entry
                wf = float32(w)
                if fixedsize == 0:
                    vmini = None
                elif variable:
                    vmini = (v,) if v else ()
                else:
                    vmini = v
                data = dumps(((d,), None if wf == 1.0 else wf, vmini), protocol)
                if exact or len(data) >= COMPRESS_MIN_BYTES:
                    data, comp = zlib.compress(data, COMPRESSION), COMPRESSION
                else:
                    comp = 0
                maxweight = w if w > 0 else 0
                lb = lengths[d]
                info = dumps((1, d, maxweight, comp, lb, lb), 2)
                chunk = WHOOSH3_HEADER_MAGIC + _INT.pack(-(len(info) + len(data))) + info + data
                terminfo = _TERMINFO.pack(0, wf, 1, lb, lb, maxweight, d, d, offset, len(chunk))
            else:
                chunk, terminfo = encode(entry[0::3], entry[1::3], entry[2::3], offset)
            parts.append(chunk)
            offset += len(chunk)
            rows.append((prefix + btext, terminfo))
            if len(parts) >= 4096:
                postfile.write(b"".join(parts))
                parts = []
        postfile.write(b"".join(parts))
        _add_terms(tindex, rows)
        fw.finish_field()


class _TermEncoder:
    """Encode whole posting lists of one field into W3 blocks and term infos.

    BulkSegmentWriter._write_field inlines the one-posting case of __call__.
    """

    def __init__(self, fixedsize, lengths: bytearray, exact: bool):
        self.fixedsize = fixedsize
        self.lengths = lengths
        self.exact = exact
        self.protocol = 2 if exact else DATA_PROTOCOL
        self.f32: dict[float, float] = {}

    def float32(self, w: float) -> float:
        """w as stored in array("f"): compare and pickle what the reader gets back."""
        f = self.f32.get(w)
        if f is None:
            f = self.f32[w] = _F32.unpack(_F32.pack(w))[0]
        return f

    def _values(self, vs: list):
        fixedsize = self.fixedsize
        if fixedsize == 0:
            return None
        if not all(vs):  # Whoosh drops empty value strings
            vs = [v for v in vs if v]
        if fixedsize is None or fixedsize < 0:
            return tuple(vs)
        return b"".join(vs)

    def _pack_data(self, data) -> tuple[bytes, int]:
        databytes = dumps(data, self.protocol)
        if self.exact or len(databytes) >= COMPRESS_MIN_BYTES:
            return zlib.compress(databytes, COMPRESSION), COMPRESSION
        return databytes, 0

    def __call__(self, docs: list, weights: list, values: list, offset: int):
        """Return (posting list bytes, term info bytes) for a term starting at offset."""
        lengths = self.lengths
        parts = [WHOOSH3_HEADER_MAGIC]
        total_weight, max_weight, min_lb, max_lb = 0, 0, 0, 0
        n = len(docs)
        for start in range(0, n, BLOCK_LIMIT):
            ids = docs[start:start + BLOCK_LIMIT]
            ws = weights[start:start + BLOCK_LIMIT]
            k = len(ids)
            wa = array("f", ws)
            w0 = wa[0]
            if wa.count(w0) == k:
                wmini = None if w0 == 1.0 else w0
            else:
                wmini = tuple(wa)
            deltas = (ids[0], *map(sub, ids[1:], ids[:-1]))
            data, comp = self._pack_data(
                (deltas, wmini, self._values(values[start:start + BLOCK_LIMIT])))
            bmax_w = max(ws)
            if not bmax_w > 0:
                bmax_w = 0
            lbs = bytes(map(lengths.__getitem__, ids))
            bmax = max(lbs)
            bmin = min(lbs)
            if not bmin:
                bmin = min((b for b in lbs if b), default=0)
            info = dumps((k, ids[-1], bmax_w, comp, bmin, bmax), 2)
            size = len(info) + len(data)
            parts.append(_INT.pack(-size if start + BLOCK_LIMIT >= n else size))
            parts.append(info)
            parts.append(data)
            total_weight += sum(wa)
            if bmax_w > max_weight:
                max_weight = bmax_w
            if bmin and (not min_lb or bmin < min_lb):
                min_lb = bmin
            if bmax > max_lb:
                max_lb = bmax
        chunk = b"".join(parts)
        return chunk, _TERMINFO.pack(0, total_weight, n, min_lb, max_lb, max_weight,
                                     docs[0], docs[-1], offset, len(chunk))


def _add_terms(tindex, rows: list) -> None:
    """Append (key, value) rows, keys increasing, to an OrderedHashWriter in one write.

    Does what OrderedHashWriter.add does per row (key/value record, position index,
    hash bucket) without a method call, a tell() and three writes per term.
    """
    if not rows:
        return
    if tindex.hashtype != 0 or rows[0][0] <= tindex.lastkey:
        for key, value in rows:  # not the layout we know: take the slow road
            tindex.add(key, value)
        return
    dbfile = tindex.dbfile
    pos = dbfile.tell()
    buckets = tindex.buckets
    index_append = tindex.index.append
    pack = _KV_LENGTHS.pack
    parts = []
    for key, value in rows:
        index_append(pos)
        # md5_hash(key): the low 32 bits of the digest read as a big-endian number
        h = int.from_bytes(md5(key, usedforsecurity=False).digest()[12:], "big")
        buckets[h & 255].append((h, pos))
        record = pack(len(key), len(value)) + key + value
        parts.append(record)
        pos += len(record)
    dbfile.write(b"".join(parts))
    tindex.lastkey = rows[-1][0]


def _write_hashes(tindex) -> None:
    """HashWriter._write_hashes with one write per bucket instead of one per slot."""
    dbfile = tindex.dbfile
    pack = _POINTER.pack
    for entries in tindex.buckets:
        pos = dbfile.tell()
        numslots = 2 * len(entries)
        tindex.directory.append((pos, numslots))
        table = [_NULL] * numslots
        for entry in entries:  # open addressing, as the reader probes
            slot = (entry[0] >> 8) % numslots
            while table[slot] is not _NULL:
                slot = (slot + 1) % numslots
            table[slot] = entry
        dbfile.write(b"".join(starmap(pack, table)))
