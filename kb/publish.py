"""Publishing a built index to the folders servers read: build once, copy, swap.

`publish(SRC, DEST)` copies SRC's current generation into DEST the same way a build
swaps one in (kb/index.py), so servers reading DEST never see half an index:
    1. copy SRC/gen-X/ to DEST/.publishing-gen-X-<pid>/ (hidden, named by no meta.json),
       and check the copy is the same files SRC had before and after the copy
       (a write committed on the build machine meanwhile means: copy again),
    2. flush it to disk, check that it opens as an index,
    3. under DEST's writer lock: rename it to DEST/gen-X/, flush DEST, replace
       DEST/meta.json atomically (servers reopen when it changes), then remove the
       generations older than the one just replaced, which is kept for the readers
       still in the middle of a request on it.
A copy that fails or is killed leaves DEST's meta.json naming the generation it named
before; the hidden folder is removed, or by the next publish when the process died.

Publishing what DEST already serves (same generation, same files) does nothing.
Publishing a generation DEST still keeps (a rollback to the previous build) swaps it
back in without copying. When SRC's generation changed in place since it was last
published (writes on the build machine), the copy gets a new name, `gen-X-r2`, since
a folder that servers may be reading is never overwritten.
"""
from __future__ import annotations

import datetime as dt
import filecmp
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from whoosh import index as whoosh_index

from .durable import writer_lock
from .errors import BadRequest, Conflict, IndexIncompatible, IndexMissing, KBError
from .index import (GENERATION_PREFIX, META_FILE, Progress, _is_stale, _write_json_atomic,
                    check_meta, fsync_dir, fsync_tree, generation_dir, read_meta)

TEMP_PREFIX = ".publishing-"
PRUNING_PREFIX = ".pruning-"
COPY_ATTEMPTS = 3  # copies restarted because SRC changed meanwhile, before giving up
# Lock files: Whoosh's (a file per index folder) and the writer lock (kb/durable.py).
# They are not index data; DEST gets its own.
LOCK_SUFFIX = "WRITELOCK"
# What an index folder may hold besides meta.json and gen-* (temp and lock files, the
# pending-write journal, the search log): DEST must be an index folder or empty.
INDEX_FOLDER_FILES = ("write.lock", "pending.json", "searchlog.sqlite3",
                      "searchlog.sqlite3-wal", "searchlog.sqlite3-shm")


class PublishFailed(KBError):
    """索引の公開に失敗しました。公開先は以前の世代のまま配信されています。"""

    status = 500
    code = "publish_failed"


@dataclass
class PublishResult:
    """What a publish did."""

    source: str  # SRC's folder
    dest: str  # DEST's folder
    source_generation: str  # the generation's name in SRC
    generation: str  # its name in DEST (the same unless that name was taken)
    previous: str | None = None  # the generation DEST served before, kept
    noop: bool = False  # DEST already served it
    reused: bool = False  # DEST still kept it: swapped back in without copying
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    pruned: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the person who ran the command (Japanese, like the errors)."""
        if self.noop:
            named = "" if self.generation == self.source_generation else f"（{self.generation}）"
            return (f"{self.dest} はすでに {self.source_generation}{named} を配信しています。"
                    "公開するものはありません。")
        how = ("公開先に残っていた世代を複製せずに戻しました" if self.reused else
               f"{self.files} ファイル、{self.bytes / 1e6:.1f} MB を複製")
        line = (f"{self.source} の {self.source_generation} を {self.dest} に "
                f"{self.generation} として公開しました（{how}、{self.seconds:.2f} 秒）。")
        if self.previous:
            line += f"前の世代 {self.previous} は切り替え中の読み手のために残しています。"
        if self.pruned:
            line += f"古い世代 {', '.join(self.pruned)} を削除しました。"
        return line


# --- the files of a generation --------------------------------------------------------


def _data_files(folder: Path) -> list[Path]:
    """The files of a generation folder that are index data (no lock files), sorted."""
    return sorted(p for p in folder.rglob("*")
                  if not p.is_dir() and not p.name.endswith(LOCK_SUFFIX))


def manifest(folder: Path) -> dict[str, tuple[int, int]]:
    """Return {relative path: (size, mtime_ns)} of a generation's data files."""
    out = {}
    for path in _data_files(folder):
        st = path.stat()  # follows links: a dangling one raises, as copying it would
        out[path.relative_to(folder).as_posix()] = (st.st_size, st.st_mtime_ns)
    return out


def same_files(src: Path, dest: Path) -> bool:
    """True when dest holds exactly src's data files with the same contents.

    Sizes and modification times first (a copy keeps them); a file whose time differs
    (a file system with coarser times) is compared byte by byte.
    """
    try:
        a, b = manifest(src), manifest(dest)
    except OSError:
        return False
    if a.keys() != b.keys():
        return False
    for rel, (size, mtime) in a.items():
        if b[rel][0] != size:
            return False
        if b[rel][1] != mtime and not filecmp.cmp(src / rel, dest / rel, shallow=False):
            return False
    return True


def copy_file(src: Path, dest: Path) -> None:
    """Copy one file with its times (a module-level name, so tests can make it fail)."""
    shutil.copy2(src, dest)


def _copy_generation(src: Path, tmp: Path, progress: Progress | None) -> tuple[int, int]:
    """Copy src's data files into the new folder tmp; return (files, bytes)."""
    files = _data_files(src)
    tmp.mkdir()
    count = size = 0
    for path in files:
        target = tmp / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_file(path, target)
        count += 1
        size += target.stat().st_size
        if progress:
            progress(1)
    return count, size


def _fsync_all(folder: Path) -> None:
    """Flush every file and every folder under folder, and folder itself."""
    fsync_tree(folder)
    for sub in folder.rglob("*"):
        if sub.is_dir():
            fsync_dir(sub)


def _check_opens(folder: Path) -> int:
    """Open the copy as a Whoosh index; return its article count."""
    ix = whoosh_index.open_dir(str(folder))
    try:
        with ix.searcher() as s:
            return s.doc_count()
    finally:
        ix.close()


# --- the destination folder -----------------------------------------------------------


def _dest_meta(dest: Path) -> dict | None:
    """DEST's meta.json when it is readable, else None (a first publish, or a broken one)."""
    try:
        return read_meta(dest)
    except KBError:
        return None


def _serves(dest: Path, meta: dict | None, src_gen: Path) -> bool:
    """True when DEST already serves src_gen: the same generation with the same files."""
    if not meta or not meta.get("generation"):
        return False
    if meta.get("source_generation", meta["generation"]) != src_gen.name:
        return False
    try:
        check_meta(meta, dest)
    except KBError:
        return False
    current = dest / meta["generation"]
    return current.is_dir() and same_files(src_gen, current)


def _kept_copy(dest: Path, src_gen: Path, current: str | None) -> Path | None:
    """A generation DEST still keeps (not the current one) that holds src_gen's files."""
    for candidate in sorted(dest.glob(src_gen.name + "*")):
        name = candidate.name
        if name == current or not candidate.is_dir():
            continue
        if name == src_gen.name or (name.startswith(src_gen.name + "-r")
                                    and name[len(src_gen.name) + 2:].isdigit()):
            if same_files(src_gen, candidate):
                return candidate
    return None


def _free_name(dest: Path, name: str) -> str:
    """name, or name-r2, name-r3 ... when DEST already has a folder of that name."""
    if not (dest / name).exists():
        return name
    n = 2
    while (dest / f"{name}-r{n}").exists():
        n += 1
    return f"{name}-r{n}"


def _check_dest(dest: Path) -> None:
    """Refuse a DEST that exists but is neither an index folder nor empty."""
    if dest.exists() and not dest.is_dir():
        raise BadRequest(f"公開先 {dest} はフォルダではありません。")
    if not dest.is_dir() or (dest / META_FILE).exists():
        return
    others = [p.name for p in dest.iterdir()
              if not (p.name.startswith(".") or p.name.startswith(GENERATION_PREFIX)
                      or p.name in INDEX_FOLDER_FILES)]
    if others:
        raise Conflict(f"公開先 {dest} は索引のフォルダではありません"
                       f"（meta.json がなく、{', '.join(sorted(others)[:3])} などがあります）。",
                       hint="give a new or empty folder, or an index folder")


def _remove_leftovers(dest: Path) -> None:
    """Remove the hidden folders of publishes that died (their process is gone)."""
    for prefix in (TEMP_PREFIX, PRUNING_PREFIX):
        for stale in dest.glob(prefix + "*"):
            if stale.is_dir() and _is_stale(stale):
                shutil.rmtree(stale, ignore_errors=True)


def _prune(dest: Path, keep: set[str]) -> list[str]:
    """Remove DEST's generations other than keep; return their names.

    Each is renamed to a hidden name first, so a removal that stops half way never
    leaves a gen-* folder that looks whole.
    """
    removed = []
    for gen in sorted(dest.glob(GENERATION_PREFIX + "*")):
        if gen.name in keep or not gen.is_dir():
            continue
        hidden = dest / f"{PRUNING_PREFIX}{gen.name}-{os.getpid()}"
        try:
            os.rename(gen, hidden)
        except OSError:
            continue
        removed.append(gen.name)
        shutil.rmtree(hidden, ignore_errors=True)
    if removed:
        fsync_dir(dest)
    return removed


# --- publishing -----------------------------------------------------------------------


def check_source(src: Path) -> tuple[dict, Path]:
    """Return SRC's meta and current generation folder, or raise with a clear message."""
    try:
        meta = read_meta(src)
    except IndexMissing:
        raise IndexMissing(f"公開元の索引 {src} がありません（meta.json がありません）。",
                           hint=f"build it first: kb index corpus/ --index {src}") from None
    check_meta(meta, src)  # IndexIncompatible, with the hint to rebuild
    if not isinstance(meta.get("generation"), str) or not meta["generation"].startswith(
            GENERATION_PREFIX) or "/" in meta["generation"] or "\\" in meta["generation"]:
        raise IndexIncompatible(f"索引 {src} の meta.json が世代を正しく示していません。")
    gen = generation_dir(src, meta)
    if not gen.is_dir() or not whoosh_index.exists_in(str(gen)):
        raise IndexIncompatible(f"索引 {src} の世代 {gen.name} がありません（または壊れています）。",
                                hint=f"rebuild it: kb index corpus/ --index {src}")
    return meta, gen


def publish(src: str | Path, dest: str | Path, *, lock_timeout: float = 60.0,
            show_progress: bool = False) -> PublishResult:
    """Copy SRC's current generation into DEST and swap it in atomically (see above)."""
    started = time.perf_counter()
    src, dest = Path(src), Path(dest)
    src_meta, src_gen = check_source(src)
    if dest.resolve() == src.resolve():
        raise BadRequest(f"公開元と公開先が同じフォルダです（{src}）。")
    _check_dest(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PublishFailed(f"公開先 {dest} を作れません（{exc.strerror}）。") from None
    result = PublishResult(source=str(src), dest=str(dest), source_generation=src_gen.name,
                           generation=src_gen.name)

    meta = _dest_meta(dest)
    if _serves(dest, meta, src_gen):
        result.noop, result.generation = True, meta["generation"]
        result.seconds = time.perf_counter() - started
        return result

    tmp: Path | None = None
    try:
        _remove_leftovers(dest)
        kept = _kept_copy(dest, src_gen, meta.get("generation") if meta else None)
        if kept is None:
            tmp = dest / f"{TEMP_PREFIX}{src_gen.name}-{os.getpid()}"
            if tmp.exists():  # ours from an earlier call of this process that failed
                shutil.rmtree(tmp)
            result.files, result.bytes = _copy_consistent(src, src_gen, tmp, show_progress)
            _fsync_all(tmp)
            fsync_dir(dest)
            try:
                _check_opens(tmp)
            except Exception as exc:
                raise PublishFailed(f"複製した世代 {src_gen.name} を索引として開けません（{exc}）。"
                                    f"{dest} は以前の世代のまま配信されています。") from None

        with writer_lock(dest, lock_timeout):
            meta = _dest_meta(dest)  # another publish may have swapped meanwhile
            current = meta.get("generation") if meta else None
            if _serves(dest, meta, src_gen):
                result.noop, result.generation = True, current
                result.seconds = time.perf_counter() - started
                return result
            previous = current if current and (dest / current).is_dir() else None
            if kept is not None and kept.is_dir() and kept.name != current:
                name, result.reused = kept.name, True
            else:
                if tmp is None:  # the kept copy went away meanwhile: copy after all
                    raise Conflict(f"公開先 {dest} が公開中に変わりました。",
                                   hint="run kb publish again")
                name = _free_name(dest, src_gen.name)
                os.rename(tmp, dest / name)
                tmp = None
                fsync_dir(dest)
            new_meta = {**src_meta, "generation": name, "source_generation": src_gen.name,
                        "published_at": dt.datetime.now().isoformat(timespec="seconds")}
            _write_json_atomic(dest / META_FILE, new_meta)
            result.generation, result.previous = name, previous
            # still under the lock: no other publish can swap in between and be pruned
            result.pruned = _prune(dest, {name} | ({previous} if previous else set()))
    except KBError:
        raise
    except OSError as exc:
        where = f"（{exc.strerror or exc}: {exc.filename}）" if exc.filename else f"（{exc}）"
        raise PublishFailed(f"{src_gen.name} を {dest} に公開できませんでした{where}。"
                            f"{dest} は以前の世代のまま配信されています。") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    result.seconds = time.perf_counter() - started
    return result


def _copy_consistent(src: Path, src_gen: Path, tmp: Path,
                     show_progress: bool) -> tuple[int, int]:
    """Copy src_gen into tmp until a copy sees the same files before and after it.

    The build machine may commit a write to its current generation while we copy (a
    new segment and table of contents, old segments merged away): then the copy may
    mix two commits, or a file goes missing half way. Either way: copy again.
    """
    for attempt in range(1, COPY_ATTEMPTS + 1):
        before = manifest(src_gen)
        progress = Progress(len(before), "索引を複製中") if show_progress else None
        try:
            copied = _copy_generation(src_gen, tmp, progress)
        except OSError:
            if attempt == COPY_ATTEMPTS or not _changed(src_gen, before):
                raise  # a real failure (disk full, unreadable file): report it
            copied = None
        if copied is not None and not _changed(src_gen, before):
            return copied
        shutil.rmtree(tmp, ignore_errors=True)  # the source changed under us: again
    raise Conflict(f"公開元 {src} の世代 {src_gen.name} が複製中に書き換わり続けました。",
                   hint="run kb publish again when no one is writing")


def _changed(src_gen: Path, before: dict) -> bool:
    """True when src_gen's files are no longer those of the manifest `before`."""
    try:
        return manifest(src_gen) != before
    except OSError:
        return True
