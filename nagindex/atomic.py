"""Writes that are either complete or absent, and durable once renamed.

A reader must never see a half-written manifest, shard or output file: every
file is written under a temporary name beside its destination and renamed into
place, which POSIX makes atomic within one file system. The temporary file (or
every file of a temporary directory) is flushed to disk before the rename and
the directory after it, so a crash of the machine, not only of the process,
leaves the old content or the new, whoever wrote the file (json, h5py, FAISS).
A write that finds its file system full is one line naming the file
(:class:`~nagindex.errors.DiskFull`), whichever library was writing it.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
from pathlib import Path

from .errors import DiskFull

# How a write into a full file system fails: OSError's errno, or (FAISS, which gives none) its message.
_FULL = (errno.ENOSPC, errno.EDQUOT)
_FULL_MESSAGES = tuple(os.strerror(e) for e in _FULL)
# What ``atomic_path`` leaves behind when its process is killed: ``.NAME.tmp-PID`` and ``.NAME.old-PID``.
LEFTOVER = re.compile(r"\..+\.(tmp|old)-\d+")


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path; on success flush it to disk and rename it onto ``path``, else remove it."""
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        with _told_if_full(path, tmp):
            yield tmp
            fsync_tree(tmp)
            if tmp.is_dir() and path.is_dir():
                old = path.with_name(f".{path.name}.old-{os.getpid()}")
                path.rename(old)
                tmp.rename(path)
                shutil.rmtree(old)
            else:
                os.replace(tmp, path)
            fsync_dir(path.parent)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def _told_if_full(path: Path, tmp: Path):
    """Turn a write of ``tmp`` that found the file system full into :class:`DiskFull` naming ``path``.

    h5py reports it as an OSError with the errno, FAISS as a RuntimeError
    whose message alone says it; anything else passes unchanged. The space
    ``tmp`` took is given back at once, even while the library that wrote
    it still holds it open, so the disk is no fuller than before the write.
    """
    try:
        yield
    except (OSError, RuntimeError) as err:
        if getattr(err, "errno", None) not in _FULL and not any(m in str(err) for m in _FULL_MESSAGES):
            raise
        for p in [tmp, *tmp.rglob("*")] if tmp.exists() else ():
            if p.is_file():
                os.truncate(p, 0)
        usage = shutil.disk_usage(path.parent)
        raise DiskFull(f"{path}: no space left on device ({usage.free:,} bytes free of {usage.total:,} on its "
                       "file system); what was written before is kept: free some space and rerun the same "
                       "command to go on") from None


def rename_durably(src: Path, dst: Path) -> None:
    """Rename a finished directory or file into place, its content on disk first."""
    fsync_tree(src)
    os.rename(src, dst)
    fsync_dir(dst.parent)


def write_json(path: str | os.PathLike, obj) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")


def remove_leftovers(directory: Path, of: str | None = None) -> list[Path]:
    """Remove what killed writers left in ``directory`` (only those of the file named ``of``, if given).

    Only safe while holding the lock of whoever writes there: in ``directory``,
    or of that one file.
    """
    removed = []
    for p in directory.iterdir() if directory.is_dir() else ():
        if LEFTOVER.fullmatch(p.name) and (of is None or p.name.startswith(f".{of}.")):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            removed.append(p)
    return removed


def fsync_tree(path: Path) -> None:
    """fsync a file, or every file of a directory and the directory itself."""
    if path.is_dir():
        for child in path.iterdir():
            fsync_tree(child)
        fsync_dir(path)
    elif path.is_file():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
