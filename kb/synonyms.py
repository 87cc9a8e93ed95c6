"""The domain synonym list: a plain UTF-8 file staff edit, applied at query time.

One group per line, words separated by commas (、 and ， work too):

    # comments start with #
    BPO, 業務委託, アウトソーシング        every word finds the others
    九州 => 福岡県, 佐賀県, 長崎県         the left side also finds the right (one way)

Words are compared after the same analysis as the query (ＢＰＯ = BPO, 引越し = 引っ越し),
so a group applies however a user spells its words. The file is re-read when it
changes; no rebuild is needed.
"""
from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .analysis import Morph, analyze

_SPLIT = re.compile(r"[,、，]")
_ONE_WAY = re.compile(r"=>|->|→")


@dataclass(frozen=True)
class Synonym:
    """One word of a group: as written, and as the terms a query analyses it into."""

    text: str
    terms: tuple[str, ...]
    parts: tuple[tuple[str, ...], ...]  # the A units of each term ((),  when it does not split)


@dataclass
class SynonymTable:
    """Word (as terms) -> the words it also finds."""

    table: dict[tuple[str, ...], list[Synonym]] = field(default_factory=dict)
    path: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def longest(self) -> int:
        return max((len(k) for k in self.table), default=0)

    def add(self, sources: list[Synonym], targets: list[Synonym]) -> None:
        """Let every source find every target (a source never lists itself)."""
        for s in sources:
            found = self.table.setdefault(s.terms, [])
            for t in targets:
                if t.terms != s.terms and all(t.terms != f.terms for f in found):
                    found.append(t)

    def matches(self, terms: list[str]) -> list[tuple[int, int, list[Synonym]]]:
        """Return (start, end, synonyms) for runs of terms that are words of the list.

        Scans left to right, longest run first, so 指定管理者制度 wins over 指定管理.
        """
        out = []
        i, longest = 0, self.longest
        while i < len(terms):
            for n in range(min(longest, len(terms) - i), 0, -1):
                found = self.table.get(tuple(terms[i:i + n]))
                if found:
                    out.append((i, i + n, found))
                    i += n
                    break
            else:
                i += 1
        return out

    def __len__(self) -> int:
        return len(self.table)


def _word(text: str) -> Synonym | None:
    morphs: list[Morph] = analyze(text, "query")
    if not morphs:
        return None
    return Synonym(text, tuple(m.text for m in morphs), tuple(m.parts for m in morphs))


def parse(text: str, path: str | None = None) -> SynonymTable:
    """Read the synonym file format; a line that cannot be read is listed in `problems`."""
    table = SynonymTable(path=path)
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        sides = _ONE_WAY.split(line)
        if len(sides) > 2:
            table.problems.append(f"{path or 'synonyms'}:{number}: more than one =>")
            continue
        groups = [[w for w in (_word(x.strip()) for x in _SPLIT.split(side) if x.strip()) if w]
                  for side in sides]
        if len(sides) == 2:
            sources, targets = groups
            if not sources or not targets:
                table.problems.append(f"{path or 'synonyms'}:{number}: a side of => is empty")
                continue
            table.add(sources, targets)
        else:
            (words,) = groups
            if len(words) < 2:
                table.problems.append(f"{path or 'synonyms'}:{number}: a group needs two words")
                continue
            table.add(words, words)
    return table


_cache: dict[str, tuple[tuple[int, int], SynonymTable]] = {}
_cache_lock = threading.Lock()


def load(path: str | os.PathLike | None) -> SynonymTable | None:
    """Return the table of a synonym file, re-read when the file changes; None if absent."""
    if path is None or str(path) == "":
        return None
    key = str(Path(path).resolve())
    try:
        st = os.stat(key)
    except OSError:
        return None
    stamp = (st.st_mtime_ns, st.st_size)
    with _cache_lock:
        cached = _cache.get(key)
        if cached and cached[0] == stamp:
            return cached[1]
    try:
        table = parse(Path(key).read_text(encoding="utf-8-sig"), key)
    except (OSError, UnicodeDecodeError) as exc:
        table = SynonymTable(path=key, problems=[f"{key}: {exc}"])
    with _cache_lock:
        _cache[key] = (stamp, table)
    return table
