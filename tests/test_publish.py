"""`kb publish`: build once, copy, swap; a real server on the copy never fails a search."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import kb.publish
from kb.cli import cli
from kb.corpus import Article
from kb.errors import IndexIncompatible, IndexMissing
from kb.index import OpenIndex, read_meta, update_articles
from kb.publish import PublishFailed, publish
from kb.rebuild import rebuild
from kb.search import search

ROOT = Path(__file__).resolve().parents[1]
VERSIONS = ("v1", "v2", "v3")
# one word per version, so a search also tells which build answered
MARKERS = {"v1": "りんご", "v2": "みかん", "v3": "ぶどう"}
PLACES = ["札幌市", "仙台市", "静岡市", "福岡市"]


def _write_corpus(folder: Path, version: str) -> Path:
    """Four plain-text articles whose ids start with the version."""
    folder.mkdir(parents=True)
    for i, place in enumerate(PLACES):
        (folder / f"{version}-case-{i}.txt").write_text(
            f"{place}の窓口業務委託（{MARKERS[version]}）\n"
            f"{place}は窓口業務を民間事業者に委託した。{MARKERS[version]}の産地でもある。"
            f"受付の待ち時間は{10 + i}分短くなった。\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, Path]:
    """Three real indexes (Sudachi, related model) of three different article sets.

    They stand for the build machine's index after three builds; tests only read them.
    """
    base = tmp_path_factory.mktemp("publish-builds")
    out = {}
    for version in VERSIONS:
        corpus = _write_corpus(base / f"corpus-{version}", version)
        rebuild([corpus], base / f"index-{version}", procs=1, show_progress=False)
        out[version] = base / f"index-{version}"
    return out


def _gen(index_dir: Path) -> str:
    return read_meta(index_dir)["generation"]


def _served_versions(index_dir: Path) -> set[str]:
    ix = OpenIndex(index_dir)
    try:
        hits = search(ix, "窓口", per_page=20, snippets=False)["hits"]
    finally:
        ix.close()
    return {h["id"].split("-", 1)[0] for h in hits}


def _visible(dest: Path) -> set[str]:
    """DEST's entries that are not hidden."""
    return {p.name for p in dest.iterdir() if not p.name.startswith(".")}


# --- publishing, one call at a time --------------------------------------------------


def test_publish_copies_the_generation_and_swaps_it_in(builds, runner, tmp_path):
    dest = tmp_path / "srv" / "index"  # created, parents too
    result = runner.invoke(cli, ["publish", str(builds["v1"]), str(dest), "--quiet"])
    assert result.exit_code == 0, result.output
    gen = _gen(builds["v1"])
    assert "公開しました" in result.output and gen in result.output
    meta = read_meta(dest)
    assert meta["generation"] == gen and meta["source_generation"] == gen
    assert meta["articles"] == 4 and "published_at" in meta
    assert _visible(dest) == {"meta.json", gen, "write.lock"}
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]
    assert _served_versions(dest) == {"v1"}
    # the related model came along with the Whoosh files
    from kb.related import open_model
    assert open_model(dest).for_article("v1-case-0", 3)["related"]


def test_publishing_what_dest_serves_is_a_no_op(builds, runner, tmp_path):
    dest = tmp_path / "index"
    assert runner.invoke(cli, ["publish", str(builds["v1"]), str(dest)]).exit_code == 0
    before = os.stat(dest / "meta.json")
    result = runner.invoke(cli, ["publish", str(builds["v1"]), str(dest)])
    assert result.exit_code == 0, result.output
    assert "すでに" in result.output and "公開するものはありません" in result.output
    after = os.stat(dest / "meta.json")
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert publish(builds["v1"], dest).noop


def test_previous_generation_is_kept_and_older_ones_pruned(builds, tmp_path):
    dest = tmp_path / "index"
    g1, g2, g3 = (_gen(builds[v]) for v in VERSIONS)
    publish(builds["v1"], dest)
    r2 = publish(builds["v2"], dest)
    assert r2.previous == g1 and r2.pruned == []
    r3 = publish(builds["v3"], dest)
    assert r3.previous == g2 and r3.pruned == [g1]
    assert _visible(dest) == {"meta.json", "write.lock", g2, g3}
    # a rollback to the kept generation swaps it back without copying
    back = publish(builds["v2"], dest)
    assert back.reused and back.files == 0 and back.previous == g3
    assert _gen(dest) == g2 and _served_versions(dest) == {"v2"}
    assert _visible(dest) == {"meta.json", "write.lock", g2, g3}


def test_writes_on_the_build_machine_are_published_under_a_new_name(builds, tmp_path):
    src = tmp_path / "build"
    shutil.copytree(builds["v1"], src)
    dest = tmp_path / "index"
    publish(src, dest)
    gen = _gen(src)
    # a write commits to the build machine's current generation in place
    update_articles(src, [Article(id="v1-case-new", title="函館市の窓口業務委託",
                                  body="函館市は窓口業務を委託した。")])
    again = publish(src, dest)
    assert not again.noop and again.generation == f"{gen}-r2" and again.previous == gen
    assert read_meta(dest)["source_generation"] == gen
    ix = OpenIndex(dest)
    try:
        assert ix.doc_count() == 5
    finally:
        ix.close()
    assert publish(src, dest).noop


@pytest.mark.parametrize("breakage,says", [
    ("missing", "がありません"),
    ("unreadable-meta", "読めません"),
    ("other-version", "別の版"),
    ("missing-generation", "がありません"),
])
def test_a_bad_source_is_a_clear_error(builds, runner, tmp_path, breakage, says):
    src = tmp_path / "src"
    if breakage != "missing":
        shutil.copytree(builds["v1"], src)
        meta = read_meta(src)
        if breakage == "unreadable-meta":
            (src / "meta.json").write_text("{not json", encoding="utf-8")
        elif breakage == "other-version":
            meta["schema_version"] = 1
            (src / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        else:
            shutil.rmtree(src / meta["generation"])
    dest = tmp_path / "dest"
    result = runner.invoke(cli, ["publish", str(src), str(dest)])
    assert result.exit_code == 1
    assert result.output.startswith("Error:") and says in result.output
    assert "hint:" in result.output and "Traceback" not in result.output
    assert not dest.exists()
    with pytest.raises((IndexMissing, IndexIncompatible)):
        publish(src, dest)


def test_dest_must_be_an_index_folder_or_new(builds, runner, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "memo.txt").write_text("大事なメモ", encoding="utf-8")
    result = runner.invoke(cli, ["publish", str(builds["v1"]), str(notes)])
    assert result.exit_code == 1 and "索引のフォルダではありません" in result.output
    assert sorted(p.name for p in notes.iterdir()) == ["memo.txt"]
    same = runner.invoke(cli, ["publish", str(builds["v1"]), str(builds["v1"])])
    assert same.exit_code == 1 and "同じフォルダ" in same.output


def test_a_copy_failing_midway_leaves_the_previous_generation_serving(
        builds, runner, tmp_path, monkeypatch):
    dest = tmp_path / "index"
    publish(builds["v1"], dest)
    g1 = _gen(dest)
    real, copied = kb.publish.copy_file, []

    def disk_full_after_two(src, target):
        if len(copied) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
        real(src, target)
        copied.append(target)

    monkeypatch.setattr(kb.publish, "copy_file", disk_full_after_two)
    result = runner.invoke(cli, ["publish", str(builds["v2"]), str(dest)])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error:") and "以前の世代のまま" in result.output
    assert len(copied) == 2  # it did fail half way
    assert _gen(dest) == g1 and _served_versions(dest) == {"v1"}
    assert set(os.listdir(dest)) == {"meta.json", g1, "write.lock"}  # no half copy left
    with pytest.raises(PublishFailed):  # the library says the same to its callers
        publish(builds["v2"], dest)
    assert _gen(dest) == g1


def test_a_missing_source_file_fails_the_publish_cleanly(builds, runner, tmp_path):
    src = tmp_path / "build"
    shutil.copytree(builds["v2"], src)
    (src / _gen(src) / "MAIN_gone.seg").symlink_to(tmp_path / "no-such-file")
    dest = tmp_path / "index"
    publish(builds["v1"], dest)
    g1 = _gen(dest)
    result = runner.invoke(cli, ["publish", str(src), str(dest)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "no-such-file" in result.output or "MAIN_gone.seg" in result.output
    assert _gen(dest) == g1 and set(os.listdir(dest)) == {"meta.json", g1, "write.lock"}


KILLABLE_PUBLISH = """
import sys, time
from pathlib import Path
import kb.publish
from kb.cli import main

real, marker = kb.publish.copy_file, Path(sys.argv[1])
def slow_copy(src, target):
    real(src, target)
    marker.write_text(str(target))
    time.sleep(60)  # killed here, half way through the copy
kb.publish.copy_file = slow_copy
sys.argv = ["kb", "publish", *sys.argv[2:]]
main()
"""


def test_a_killed_publish_leaves_the_previous_generation_serving(builds, tmp_path):
    dest = tmp_path / "index"
    publish(builds["v1"], dest)
    g1, marker = _gen(dest), tmp_path / "copied-one"
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE_PUBLISH, str(marker),
                             str(builds["v2"]), str(dest)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the publish never copied"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    half = Path(marker.read_text())
    assert half.parent.name.startswith(".publishing-") and half.exists()
    # the half copy is hidden and named by nothing: DEST serves what it served
    assert _visible(dest) == {"meta.json", g1, "write.lock"}
    assert _gen(dest) == g1 and _served_versions(dest) == {"v1"}
    # the next publish clears the dead one's folder and goes through
    publish(builds["v2"], dest)
    assert _served_versions(dest) == {"v2"} and not half.parent.exists()
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]


# --- a real server on the copy while it is republished -------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_only_prefix() -> list[str]:
    """As root: run the server without the capability to write files it does not own.

    Root can write anywhere; without CAP_DAC_OVERRIDE it obeys the permission bits, so a
    folder of mode 555 is read-only to the server yet writable to `kb publish`.
    """
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return []
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    return prefix if probe.returncode == 0 else []


class Load:
    """Threads that search the server without pause and record every answer."""

    def __init__(self, url: str, threads: int = 4):
        self.url, self.stop = url, threading.Event()
        self.lock = threading.Lock()
        self.answers: list[tuple[float, float, str, str]] = []  # (sent, got, path, version)
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                        for n in range(threads)]

    def _get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=20) as response:
            assert response.status == 200, response.status
            return json.loads(response.read().decode("utf-8"))

    def _run(self, n: int) -> None:
        paths = ["/api/search?" + urllib.parse.urlencode({"q": "窓口", "per_page": 20}),
                 "/api/search?" + urllib.parse.urlencode({"q": "窓口業務 委託"}),
                 "/healthz",
                 "/api/suggest?" + urllib.parse.urlencode({"q": "窓"})]
        i = n
        while not self.stop.is_set():
            path, i = paths[i % len(paths)], i + 1
            sent = time.monotonic()
            try:
                data = self._get(path)
                assert data["ok"] is True, data
                if path.startswith("/api/search"):
                    versions = {h["id"].split("-", 1)[0] for h in data["hits"]}
                    assert len(versions) == 1 and data["total"] == len(PLACES), data
                    version = versions.pop()
                elif path == "/healthz":
                    version = data["generation"]
                else:
                    version = ""
            except Exception as exc:  # every kind of failure counts
                with self.lock:
                    self.failures.append(f"{path}: {exc!r}")
                continue
            with self.lock:
                self.answers.append((sent, time.monotonic(), path, version))

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)

    def sent_after(self, moment: float) -> list[tuple[float, float, str, str]]:
        with self.lock:
            return [a for a in self.answers if a[0] > moment]


def _set_writable(dest: Path, writable: bool) -> None:
    """Make DEST, its files (write.lock too) and its generations read-only, or not."""
    lock = [dest / "write.lock"] if (dest / "write.lock").exists() else []
    for path in [dest, dest / "meta.json", *lock, *dest.glob("gen-*/**/*"), *dest.glob("gen-*")]:
        mode = path.stat().st_mode
        path.chmod(mode | 0o200 if writable else mode & ~0o222)


def test_searches_never_fail_while_new_generations_are_published(builds, tmp_path):
    dest = tmp_path / "srv" / "index"
    publish(builds["v1"], dest)
    prefix = _read_only_prefix()
    if prefix:  # the server may not change or add a file in DEST; kb publish (root) may
        _set_writable(dest, False)
    port, log_path = _free_port(), tmp_path / "serve.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "KB_WRITE_TOKEN": "", "KB_READ_TOKEN": "",
           "KB_CONFIG": "", "KB_CORPUS": str(tmp_path / "no-corpus"),
           "KB_SEARCH_LOG": str(tmp_path / "searchlog.sqlite3")}  # the log lives elsewhere
    log = open(log_path, "wb")
    server = subprocess.Popen(
        [*prefix, sys.executable, "-m", "kb.cli", "serve", "--index", str(dest), "--host",
         "127.0.0.1", "--port", str(port), "--workers", "2"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    load = Load(url)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                    if json.load(r)["ok"]:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("kb serve did not start: " + log_path.read_text(errors="replace"))
            time.sleep(0.2)
        load.start()
        time.sleep(1.0)
        swaps = []
        # v2 and v3 are copies; v2 again is the kept previous generation swapped back;
        # v1 again is a copy of a generation pruned meanwhile
        for version in ("v2", "v3", "v2", "v1"):
            started = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "kb.cli", "publish", "--quiet",
                                   str(builds[version]), str(dest)],
                                  cwd=ROOT, capture_output=True, text=True, timeout=120)
            published = time.monotonic()
            assert done.returncode == 0, done.stderr
            assert "公開しました" in done.stdout
            if prefix:
                _set_writable(dest, False)
            generation = read_meta(dest)["generation"]
            swaps.append((version, generation, started, published))
            # every request sent after the publish returned gets the new articles
            deadline = time.monotonic() + 30
            while len([a for a in load.sent_after(published) if a[1] > published]) < 40:
                assert time.monotonic() < deadline, "the server stopped answering"
                time.sleep(0.05)
        time.sleep(0.5)
    finally:
        load.finish()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
        log.close()
        if prefix:
            _set_writable(dest, True)

    assert load.failures == [], load.failures[:5]
    assert len(load.answers) >= 200, len(load.answers)
    for n, (version, generation, _, published) in enumerate(swaps):
        # answered between this publish's end and the next one's start: the new build only
        until = swaps[n + 1][2] if n + 1 < len(swaps) else float("inf")
        window = [a for a in load.answers if published < a[0] and a[1] < until]
        assert window, f"no request answered after publishing {version}"
        for _, _, path, seen in window:
            if path.startswith("/api/search"):
                assert seen == version, (version, path, seen)
            elif path == "/healthz":
                assert seen == generation, (generation, seen)
    # the server read DEST and wrote nothing into it (no search log, no lock of its own)
    assert _visible(dest) <= {"meta.json", "write.lock"} | {g for _, g, _, _ in swaps}
    assert {g for g in _visible(dest) if g.startswith("gen-")} == {
        _gen(builds["v1"]), _gen(builds["v2"])}  # the current one and the kept one
    for version in ("v1", "v2"):  # both exactly as published
        gen = _gen(builds[version])
        assert kb.publish.same_files(builds[version] / gen, dest / gen)
    served_log = log_path.read_text(errors="replace")
    assert "Traceback" not in served_log
    if prefix:  # even write.lock was read-only: serving went on without write recovery
        assert "read-only index folder" in served_log
