"""Loaders for the benchmark data in ../shared/data (JSQuAD dev and the livedoor corpus)."""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

# ../shared sits beside the repository root, never inside it: a fresh clone has none.
REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
SHARED_DATA = SHARED / "data"
JSQUAD_DEV = SHARED_DATA / "jsquad" / "valid-v1.3.json"
LIVEDOOR_TARBALL = SHARED_DATA / "livedoor" / "ldcc-text.tar.gz"

# JSQuAD builds each context as "<title> [SEP] <text>".
SEP = " [SEP] "


def require_shared(path: Path) -> Path:
    """Return `path`, or exit with a one-line message if ../shared or the file is missing."""
    path = Path(path)
    if not SHARED.is_dir():
        sys.exit(
            f"bench: {SHARED} not found. Benchmarks read ../shared/data beside the "
            "repository root; it is not part of a fresh clone."
        )
    if not path.is_file():
        sys.exit(f"bench: {path} not found (expected under {SHARED_DATA}).")
    return path


def load_jsquad(path: Path | None = None) -> tuple[list[dict], list[dict]]:
    """Read JSQuAD (SQuAD v1.1 layout) into paragraphs and the questions that point at them."""
    path = require_shared(path or JSQUAD_DEV)
    with open(path, encoding="utf-8") as f:
        data = json.load(f)["data"]

    paragraphs: list[dict] = []
    questions: list[dict] = []
    for article in data:
        article_title = article["title"]
        for para in article["paragraphs"]:
            # Ids follow file order, so they stay stable as long as the file does.
            pid = f"p{len(paragraphs) + 1:04d}"
            title, sep, body = para["context"].partition(SEP)
            if not sep:
                title, body = article_title, para["context"]
            paragraphs.append(
                {"id": pid, "title": title, "body": body, "article_title": article_title}
            )
            for qa in para["qas"]:
                questions.append(
                    {
                        "id": qa["id"],
                        "q": qa["question"],
                        "answers": [a["text"] for a in qa["answers"]],
                        "paragraph_id": pid,
                        "article_title": article_title,
                    }
                )
    return paragraphs, questions


def unpack_livedoor(dest_dir: Path, tarball: Path | None = None) -> list[dict]:
    """Unpack the livedoor corpus into `dest_dir` (a caller's temp folder) and read its articles."""
    tarball = require_shared(tarball or LIVEDOOR_TARBALL)
    dest_dir = Path(dest_dir)
    with tarfile.open(tarball, "r:gz") as tar:
        # The "data" filter refuses absolute paths, links out of dest_dir and device files.
        tar.extractall(dest_dir, filter="data")

    articles: list[dict] = []
    for category_dir in sorted(p for p in (dest_dir / "text").iterdir() if p.is_dir()):
        category = category_dir.name
        for path in sorted(category_dir.glob("*.txt")):
            if path.name == "LICENSE.txt" or path.name.upper().startswith("README"):
                continue
            articles.append(_read_livedoor_article(path, category))
    return articles


def _read_livedoor_article(path: Path, category: str) -> dict:
    """Split one livedoor file into URL, date, title and body."""
    lines = path.read_text(encoding="utf-8").splitlines()
    url, date, title = (lines + ["", "", ""])[:3]
    # File stems already read "<category>-<number>"; prefix only when one does not.
    stem = path.stem
    article_id = stem if stem.startswith(f"{category}-") else f"{category}-{stem}"
    return {
        "id": article_id,
        "category": category,
        "url": url.strip(),
        "date": date.strip(),
        "title": title.strip(),
        "body": "\n".join(lines[3:]).strip(),
    }
