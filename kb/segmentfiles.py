"""Zero-copy reads of Whoosh's compound segment files.

A built segment is one `.seg` file that Whoosh memory-maps. To read one of its parts
Whoosh 2.7.5 wraps the part's memory in a BytesIO, which copies it: every searcher
(one per server thread) held its own copy of the postings, terms and columns,
about 100 MB per thread for 7,000 articles. Here a part is read straight from the
map, so every thread and every worker process shares the page cache and a read
copies only the bytes it returns. Installed once, when kb.index is imported.
"""
from __future__ import annotations

import os

import whoosh
from whoosh.filedb.compound import CompoundStorage
from whoosh.filedb.filestore import StorageError
from whoosh.filedb.structfile import BufferFile


class MappedPart:
    """A read-only file over bytes [offset, offset + length) of a memory map."""

    def __init__(self, source, offset: int, length: int):
        self._source, self._start, self._end = source, offset, offset + length
        self._pos = offset

    def read(self, size: int = -1) -> bytes:
        end = self._end if size is None or size < 0 else min(self._end, self._pos + size)
        data = self._source[self._pos:end]
        self._pos = max(self._pos, end)
        return data

    def readline(self, size: int = -1) -> bytes:
        newline = self._source.find(b"\n", self._pos, self._end)
        end = self._end if newline < 0 else newline + 1
        if size is not None and size >= 0:
            end = min(end, self._pos + size)
        return self.read(end - self._pos)

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: self._start, os.SEEK_CUR: self._pos, os.SEEK_END: self._end}[whence]
        self._pos = min(max(self._start, base + pos), self._end)
        return self._pos - self._start

    def tell(self) -> int:
        return self._pos - self._start

    def close(self) -> None:
        self._source = b""
        self._start = self._end = self._pos = 0


class MappedPartFile(BufferFile):
    """Whoosh's in-memory StructFile, reading from the map instead of a private copy."""

    def __init__(self, source, offset: int, length: int, name: str | None = None):
        self._buf = memoryview(source)[offset:offset + length]
        self._name = name
        self.file = MappedPart(source, offset, length)
        self.onclose = None
        self.is_real = False
        self.is_closed = False

    def close(self):
        self._buf.release()  # lets the storage close its map once every part is closed
        super().close()


def _open_part(self, name, *args, **kwargs):
    if self.is_closed:
        raise StorageError("Storage was closed")
    if not self._source:
        return _whoosh_open_file(self, name, *args, **kwargs)
    offset, length = self.range(name)
    return MappedPartFile(self._source, offset, length, name=name)


_whoosh_open_file = CompoundStorage.open_file


def install() -> None:
    """Make compound segments read parts without copying (whoosh-reloaded 2.7.x only)."""
    if whoosh.versionstring().startswith("2.7.") and CompoundStorage.open_file is not _open_part:
        CompoundStorage.open_file = _open_part
