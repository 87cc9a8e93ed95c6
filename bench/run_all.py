"""Run every benchmark and write BENCHMARKS.md: `make bench`.

Each benchmark prints its own figures beside its baseline from the same run; this
script keeps that output verbatim under one heading per benchmark.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import sys
import time

from bench.datasets import REPO_ROOT

# (heading, module, arguments)
SUITE = [
    ("Search relevance (JSQuAD dev)", "bench.relevance_jsquad", []),
    ("Related cases (livedoor)", "bench.related_livedoor", []),
    ("Q&A (JSQuAD dev)", "bench.qa_jsquad", []),
]


class _Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for s in self.streams:
            s.write(text)
        return len(text)

    def flush(self):
        for s in self.streams:
            s.flush()


def replace_section(heading: str, body: str) -> None:
    """Put `## heading` with body into BENCHMARKS.md, replacing an older copy."""
    path = REPO_ROOT / "BENCHMARKS.md"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    marker = f"## {heading}"
    block = f"{marker}\n\n{body.rstrip()}\n"
    start = text.find(marker)
    if start >= 0:
        end = text.find("\n## ", start + len(marker))
        text = text[:start] + block + (text[end:] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text, encoding="utf-8")


def main() -> None:
    for heading, module, args in SUITE:
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            print(f"skipping {module}: {exc}")
            continue
        captured = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(_Tee(sys.stdout, captured)):
            mod.main(args)
        stamp = time.strftime("%Y-%m-%d %H:%M")
        replace_section(heading, f"Run {stamp} with `.venv/bin/python -m {module}` "
                        f"({time.perf_counter() - t0:.0f} s):\n\n```\n{captured.getvalue()}```")
    from bench import perf, soak

    perf.main([])  # writes the Performance section itself
    soak.main([])  # writes the Reliability soak section itself


if __name__ == "__main__":
    main()
