"""kb.segmentfiles: compound segment parts read from the memory map, not copied."""
from __future__ import annotations

import io
import mmap
import os

from whoosh.filedb.compound import CompoundStorage

from kb import segmentfiles
from kb.index import OpenIndex


def test_a_mapped_part_reads_like_a_file_of_its_bytes(tmp_path):
    data = b"head|" + b"line one\nline two\n\x00\x01binary" + b"|tail"
    path = tmp_path / "blob"
    path.write_bytes(data)
    start, length = 5, len(data) - 10
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as source:
        part = segmentfiles.MappedPart(source, start, length)
        want = io.BytesIO(data[start:start + length])
        for op in (lambda f: f.read(4), lambda f: f.readline(), lambda f: f.readline(3),
                   lambda f: f.tell(), lambda f: f.seek(2), lambda f: f.read(),
                   lambda f: f.read(5), lambda f: f.seek(-3, os.SEEK_END), lambda f: f.read(10),
                   lambda f: f.seek(-100, os.SEEK_CUR), lambda f: f.readline(), lambda f: f.tell()):
            assert op(part) == op(want)
        part.close()


def test_searchers_read_the_same_postings_and_share_the_map(kb_index, monkeypatch):
    assert CompoundStorage.open_file is segmentfiles._open_part  # installed by kb.index
    mapped = kb_index.searcher().reader()
    files = [mapped.postings("body", term) for term in ("窓口", "委託")]
    assert all(m.is_active() for m in files)
    monkeypatch.setattr(CompoundStorage, "open_file", segmentfiles._whoosh_open_file)
    copied = OpenIndex(kb_index.index_dir)  # Whoosh's own way, each part copied
    try:
        reader = copied.searcher().reader()
        for field in ("title", "body", "grams"):
            for term in list(reader.lexicon(field))[::5]:
                assert list(reader.postings(field, term).items_as("positions")
                            if field != "grams" else reader.postings(field, term).all_ids()) == \
                       list(mapped.postings(field, term).items_as("positions")
                            if field != "grams" else mapped.postings(field, term).all_ids())
        assert [reader.stored_fields(d) for d in range(reader.doc_count_all())] == \
               [mapped.stored_fields(d) for d in range(mapped.doc_count_all())]
    finally:
        copied.close()
