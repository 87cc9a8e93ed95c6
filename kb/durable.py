"""Durable files and the one writer: the flock that serialises writers, atomic writes.

An accepted write is on disk before it is acknowledged: files are written to a temp
file, flushed, renamed over the old one and the folder is flushed too. Writers take the
index's writer lock, an fcntl.flock on DIR/write.lock: the kernel releases it when its
holder dies, so a killed writer can never leave a lock that blocks the next one.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Iterator

from .errors import Busy
from .index import fsync_dir, read_meta

LOCK_FILE = "write.lock"
TEMP_SUFFIX = ".kbtmp"
FILE_CLOCK_SLACK_NS = 100_000_000  # file times come from a coarse clock, a tick behind
_thread_counter = threading.local()
_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()
log = logging.getLogger(__name__)


# --- the writer lock ------------------------------------------------------------------


def _busy(timeout: float) -> Busy:
    return Busy(f"他の書き込みが {timeout:g} 秒以上続いています。しばらくしてから再度お試しください。",
                retry_after=max(1, math.ceil(timeout / 2)))


def _thread_lock(index_dir: Path) -> threading.Lock:
    key = str(index_dir.resolve())
    with _thread_locks_guard:
        return _thread_locks.setdefault(key, threading.Lock())


@contextlib.contextmanager
def writer_lock(index_dir: str | Path, timeout: float) -> Iterator[None]:
    """Hold the index's writer lock; raise Busy (503) when it is not free within timeout.

    Threads of one process queue on a threading.Lock first (it wakes a waiter at once),
    then take the flock that serialises processes.
    """
    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        read_meta(index_dir)  # raises IndexMissing with its hint
    deadline = time.monotonic() + max(timeout, 0.0)
    local = _thread_lock(index_dir)
    if not local.acquire(timeout=max(timeout, 0.0)):
        raise _busy(timeout)
    try:
        fd = os.open(index_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            delay = 0.001
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _busy(timeout)
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, 0.02)
            _note_holder(fd)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    finally:
        local.release()


def _note_holder(fd: int) -> None:
    """Write our pid into the lock file; say so when a killed holder left its pid behind."""
    os.lseek(fd, 0, os.SEEK_SET)
    previous = os.read(fd, 64).decode("ascii", "replace").split()
    if previous and previous[0].isdigit() and not _alive(int(previous[0])):
        # The flock itself died with that process; only its note was left. Clear it.
        log.warning(
            "cleared the writer lock note of process %s, which is no longer running",
            previous[0])
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"{os.getpid()} {time.time():.0f}\n".encode("ascii"))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- durable files --------------------------------------------------------------------


def _temp_path(target: Path) -> Path:
    n = getattr(_thread_counter, "n", 0) + 1
    _thread_counter.n = n
    return target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}-{n}"
                            f"{TEMP_SUFFIX}")


def write_atomic(target: Path, data: bytes) -> None:
    """Write data to target so that target is either the old file or the new, whole.

    The new file gets a nanosecond mtime of its own, so a rebuild that took a snapshot
    of the folder always sees that it changed.
    """
    tmp = _temp_path(target)
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            previous = target.stat().st_mtime_ns
        except FileNotFoundError:
            previous = 0
        now = max(time.time_ns(), previous + 1)
        os.utime(tmp, ns=(now, now))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(target.parent)


def remove_durably(path: Path) -> bool:
    """Delete a file and flush its folder; False when it was already gone."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True
