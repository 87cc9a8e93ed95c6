"""The writer lock and durable files: one writer at a time, never a stale lock, never half a file."""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time

import pytest

from kb.durable import LOCK_FILE, write_atomic, writer_lock
from kb.errors import Busy

from test_store import NEW, _make_env


@pytest.fixture()
def env(tmp_path, corpus_dir):
    """A writable copy of the fixture corpus, its index and a Store over both."""
    return _make_env(tmp_path, corpus_dir)


def test_a_busy_writer_gives_busy_with_retry_after(env):
    _, index, store = env
    store.lock_timeout = 0.2
    with writer_lock(index, 1):
        started = time.monotonic()
        with pytest.raises(Busy) as info:
            store.create(NEW)
        assert time.monotonic() - started < 1.5
    assert info.value.status == 503 and info.value.retry_after >= 1
    store.create(NEW)  # the lock is free again


def test_a_killed_lock_holder_never_blocks_the_next_writer(env, caplog):
    _, index, store = env
    with subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(index / LOCK_FILE)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, f'{os.getpid()} 0\\n'.encode())\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout.readline().strip() == "locked"
            store.lock_timeout = 0.2
            with pytest.raises(Busy):
                store.create(NEW)
        finally:
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait()
    store.lock_timeout = 2
    with caplog.at_level("WARNING", logger="kb.store"):
        store.create(NEW)
    assert "no longer running" in caplog.text


def test_lock_file_is_an_flock(env):
    _, index, _ = env
    with writer_lock(index, 1):
        fd = os.open(index / LOCK_FILE, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            assert (index / LOCK_FILE).read_text().split()[0] == str(os.getpid())
        finally:
            os.close(fd)


def test_write_atomic_replaces_whole_files_with_their_own_mtime(tmp_path):
    target = tmp_path / "a.md"
    write_atomic(target, b"one")
    first = target.stat()
    write_atomic(target, b"two")  # same size, same clock tick: still a different file
    second = target.stat()
    assert target.read_bytes() == b"two"
    assert (second.st_ino, second.st_mtime_ns) != (first.st_ino, first.st_mtime_ns)
    assert second.st_mtime_ns > first.st_mtime_ns
    assert [p.name for p in tmp_path.iterdir()] == ["a.md"]  # no temp file left


def test_write_atomic_leaves_the_old_file_when_it_fails(tmp_path, monkeypatch):
    target = tmp_path / "a.md"
    write_atomic(target, b"old")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.md"]
