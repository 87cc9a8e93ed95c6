"""Crash tests: SIGKILL a real `kb index` and a real writer at random points.

After every kill the index must open, answer a search and hold every acknowledged
write; after the next writer's recovery it must agree with the corpus folder exactly.
KB_CRASH_KILLS sets how many kills of each kind (bench/soak.py runs many more).
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kb.corpus import load_sources
from kb.index import OpenIndex
from kb.search import search
from kb.rebuild import rebuild
from kb.store import Store

ROOT = Path(__file__).resolve().parents[1]
KILLS = int(os.environ.get("KB_CRASH_KILLS", "2"))
TITLE = "壊れない書き込み {id} 版{version}"
COUNTS = {"kills": 0, "writer_kills": 0, "build_kills": 0, "acknowledged": 0,
          "verifications": 0}


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    """Write the counts to KB_CRASH_REPORT (bench/soak.py reads them)."""
    yield
    target = os.environ.get("KB_CRASH_REPORT")
    if target:
        Path(target).write_text(json.dumps(COUNTS), encoding="utf-8")


def writer_main(corpus: str, index: str, seed: int) -> None:
    """Write, replace and delete articles forever, printing each acknowledgement."""
    rng = random.Random(seed)
    store = Store(corpus, index, lock_timeout=30)
    print("READY", flush=True)
    live: dict[str, int] = {}
    n = 0
    while True:
        n += 1
        roll = rng.random()
        if live and roll < 0.25:
            article_id = rng.choice(sorted(live))
            print(f"TRY {article_id}", flush=True)  # in doubt until acknowledged
            store.delete([article_id])
            del live[article_id]
            print(f"DEL {article_id}", flush=True)
            continue
        if live and roll < 0.6:
            article_id = rng.choice(sorted(live))
            version = live[article_id] + 1
            print(f"TRY {article_id}", flush=True)
            store.replace(article_id, {"title": TITLE.format(id=article_id, version=version),
                                       "body": f"窓口業務の委託 版{version}。" * rng.randint(1, 30)})
        else:
            article_id, version = f"crash-{seed}-{n}", 1
            print(f"TRY {article_id}", flush=True)
            store.create({"id": article_id, "title": TITLE.format(id=article_id, version=1),
                          "body": "窓口業務の委託について。" * rng.randint(1, 30),
                          "categories": ["窓口業務"]})
        live[article_id] = version
        print(f"ACK {article_id} {version}", flush=True)


def _python(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"}
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, **kwargs)


def start_writer(corpus: Path, index: Path, seed: int) -> subprocess.Popen:
    """A writer process; its stdout carries READY, then one line per acknowledged write."""
    proc = _python("-c", f"import test_crash; test_crash.writer_main({str(corpus)!r}, "
                         f"{str(index)!r}, {seed})", stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "READY"
    return proc


def start_build(corpus: Path, index: Path) -> subprocess.Popen:
    """A real `kb index` process."""
    return _python("-m", "kb.cli", "index", str(corpus), "--index", str(index), "--quiet",
                   "--procs", "1", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL: no cleanup handler, no flush, no goodbye."""
    if proc.poll() is None:
        COUNTS["kills"] += 1
        COUNTS["build_kills" if proc.stdout is None else "writer_kills"] += 1
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def collect(proc: subprocess.Popen, lines: list[str]) -> None:
    """Add a dead writer's acknowledgements to lines."""
    new = proc.stdout.read().splitlines()
    proc.stdout.close()
    COUNTS["acknowledged"] += sum(1 for line in new if line.startswith(("ACK ", "DEL ")))
    lines += new


def acknowledged(lines: list[str]) -> tuple[dict[str, int], set[str], set[str]]:
    """Return ({id: last acknowledged version}, ids whose deletion was acknowledged,
    ids of writes begun but never acknowledged: killed mid-way, they may or may not
    have happened)."""
    versions: dict[str, int] = {}
    deleted: set[str] = set()
    in_doubt: set[str] = set()
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0] == "TRY":
            in_doubt.add(parts[1])
        elif len(parts) == 3 and parts[0] == "ACK":
            versions[parts[1]] = int(parts[2])
            deleted.discard(parts[1])
            in_doubt.discard(parts[1])
        elif len(parts) == 2 and parts[0] == "DEL":
            versions.pop(parts[1], None)
            deleted.add(parts[1])
            in_doubt.discard(parts[1])
    return versions, deleted, in_doubt


def indexed(index: Path) -> dict[str, str]:
    """Open the index as a reader would, check it answers; return {id: title}."""
    ix = OpenIndex(index)
    try:
        search(ix, "窓口 委託")  # it answers
        return {d["id"]: d["title"] for d in ix.searcher().all_stored_fields()}
    finally:
        ix.close()


def verify(corpus: Path, index: Path, versions: dict[str, int], deleted: set[str],
           in_doubt: set[str] = frozenset()) -> dict:
    """Every acknowledged write is in the index now, and after recovery index == corpus.

    A write that was under way when its writer died was never acknowledged: its article
    may be in its old or its new state (or gone, if it was being deleted).
    """
    titles = indexed(index)
    for article_id, version in versions.items():
        if article_id in in_doubt and article_id not in titles:
            continue  # its delete was under way
        assert article_id in titles, f"acknowledged {article_id} is missing"
        got = int(titles[article_id].rsplit("版", 1)[1])
        assert got >= version, f"{article_id}: acknowledged v{version}, index has v{got}"
    back = deleted & set(titles)
    assert not back, f"acknowledged deletes are back: {back}"
    Store(corpus, index, lock_timeout=30).recover()
    titles = indexed(index)
    on_disk = {a.id: a.title for a in load_sources([corpus]).articles}
    assert titles == on_disk
    COUNTS["verifications"] += 1
    return titles


@pytest.fixture()
def crash_env(writable_copy):
    return writable_copy


def test_killed_writers_lose_no_acknowledged_write(crash_env):
    corpus, index = crash_env
    rng = random.Random(os.environ.get("KB_CRASH_SEED"))
    lines: list[str] = []
    for k in range(KILLS):
        proc = start_writer(corpus, index, seed=rng.randrange(10**6))
        time.sleep(rng.uniform(0.05, 1.5))
        kill(proc)
        collect(proc, lines)
        versions, deleted, in_doubt = acknowledged(lines)
        verify(corpus, index, versions, deleted, in_doubt)
    assert acknowledged(lines)[0], "the writers acknowledged nothing: kill later"


def test_killed_builds_leave_the_last_committed_index(crash_env):
    corpus, index = crash_env
    rng = random.Random(os.environ.get("KB_CRASH_SEED"))
    before = indexed(index)
    for _ in range(KILLS):
        build = start_build(corpus, index)
        time.sleep(rng.uniform(0.3, 2.5))
        kill(build)
        assert indexed(index) == before  # the old or the new generation, whole
    # the next build runs without manual steps and cleans what the killed ones left
    rebuild([corpus], index, procs=1, show_progress=False)
    assert indexed(index) == before
    assert len(list(index.glob("gen-*"))) <= 2
    assert not [p for p in index.glob(".building-*")]


def test_a_build_and_a_writer_killed_together(crash_env):
    corpus, index = crash_env
    rng = random.Random(os.environ.get("KB_CRASH_SEED"))
    lines: list[str] = []
    for _ in range(max(1, KILLS - 1)):
        writer = start_writer(corpus, index, seed=rng.randrange(10**6))
        build = start_build(corpus, index)
        time.sleep(rng.uniform(0.5, 3.0))
        for proc in rng.sample([writer, build], 2):
            kill(proc)
        collect(writer, lines)
        verify(corpus, index, *acknowledged(lines))
    # and a build that is left to finish keeps every write made while it ran
    writer = start_writer(corpus, index, seed=rng.randrange(10**6))
    build = start_build(corpus, index)
    assert build.wait(timeout=120) == 0
    time.sleep(0.2)
    kill(writer)
    collect(writer, lines)
    verify(corpus, index, *acknowledged(lines))
