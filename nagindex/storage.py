"""Files wherever they are: local paths and fsspec URLs (``s3://``, ``gs://``, ``hf://`` ...).

A *location* is a :class:`pathlib.Path` for a local file and a ``str`` URL for
anything fsspec reaches. ``file://`` URLs become local paths, so the local
fast path (plain ``open``, ``os.walk``) serves them. Credentials, endpoints
and other options come from where fsspec and its backends look for them:
``fsspec.config`` (``FSSPEC_S3_ENDPOINT_URL`` ...), ``AWS_*`` variables,
``~/.aws``, ``HF_TOKEN`` and so on; nothing here needs its own.

An index given as a URL is read through a local copy (:func:`local_copy`):
HDF5 and FAISS read local files, and an index is read many times.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import posixpath
import re
import shutil
from datetime import datetime
from pathlib import Path
from typing import IO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from .errors import InputError, Unreachable
from .settings import cache_dir

Location = Path | str

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Where backends put a version tag of a file, in the order tried.
_TAGS = ("ETag", "etag", "md5Hash", "blob_id", "checksum", "crc32c")
_TIMES = ("mtime", "LastModified", "last_modified", "updated", "modified")
#: Bytes fetched per request when a remote file is read through.
READ_BLOCK = 8 << 20
# What fsspec's backends raise when a connection fails, by class name: they share no class (builtins,
# botocore, aiohttp, requests), and none of them need be installed.
_CONNECTION_FAILED = ("ConnectionError", "ClientConnectionError", "ClientPayloadError", "ConnectTimeoutError",
                      "ReadTimeoutError", "TimeoutError")


def is_url(item) -> bool:
    """Whether ``item`` names a file through fsspec rather than a local path."""
    return isinstance(item, str) and bool(_URL.match(item)) and not item.startswith("file://")


def connection_failed(err: BaseException) -> bool:
    """Whether ``err`` says that a connection to storage failed (the storage is down or out of reach)."""
    return any(cls.__name__ in _CONNECTION_FAILED for cls in type(err).__mro__)


@contextlib.contextmanager
def reaching(loc: Location):
    """Report a connection that fails inside the block as one line naming ``loc`` (:class:`Unreachable`).

    A failed connection says nothing of the file: it is neither a bad record
    to skip nor damage, and whatever a build wrote before it is kept.
    """
    try:
        yield
    except Exception as err:
        if not connection_failed(err):
            raise
        detail = str(err).strip() or type(err).__name__
        raise Unreachable(f"{loc}: cannot reach it, the connection failed ({detail}); nothing is wrong with the "
                          "file: rerun the same command once its storage can be reached") from err


def location(item: str | os.PathLike) -> Location:
    """What the user wrote as a location: a URL stays a string, the rest is a local path."""
    if isinstance(item, str) and item.startswith("file://"):
        return Path(LocalFileSystem._strip_protocol(item))
    if is_url(item):
        return str(item)
    return Path(item).expanduser()


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec file system of ``url`` and the path within it."""
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as err:
        raise InputError(f"{url}: cannot reach this storage: {err}") from None


def open_file(loc: Location, mode: str = "rb") -> IO:
    """``loc`` opened as a file object (binary unless ``mode`` says otherwise)."""
    if not is_url(loc):
        return open(loc, mode)
    fs, path = filesystem(loc)
    with reaching(loc):
        return fs.open(path, mode)


def open_input(loc: Location) -> IO[bytes]:
    """``loc`` opened to be read through: a remote file streams in blocks of ``READ_BLOCK`` bytes.

    fsspec's read-ahead cache keeps one block at a time, so a file of any
    size costs a block of memory (s3fs alone would hold 50 MiB blocks), and
    seeking forward within a file fetches only what is read.
    """
    if not is_url(loc):
        return open(loc, "rb")
    fs, path = filesystem(loc)
    # Buffered as a local file is: fsspec's own readline() takes no size limit.
    with reaching(loc):
        return io.BufferedReader(fs.open(path, "rb", block_size=READ_BLOCK, cache_type="readahead"))


def info(loc: Location) -> dict:
    """The identity of a file: size, modification time and, where the storage has one, a version tag.

    Two reads of an unchanged file give the same dict; a rewritten file
    changes its size, its time or its tag. A remote file is asked afresh:
    fsspec's listing cache would still describe a file that another machine
    has rewritten since.
    """
    if not is_url(loc):
        st = Path(loc).stat()
        return {"size": st.st_size, "mtime": st.st_mtime}
    fs, path = filesystem(loc)
    fs.invalidate_cache(path)
    with reaching(loc):
        details = fs.info(path)
    out = {"size": int(details.get("size") or 0)}
    stamp = next((details[k] for k in _TIMES if details.get(k) is not None), None)
    if stamp is not None:
        out["mtime"] = _timestamp(stamp)
    tag = next((details[k] for k in _TAGS if details.get(k)), None)
    if tag is not None:
        out["etag"] = str(tag).strip('"')
    return out


def _timestamp(value) -> float | str:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return str(value)


def is_dir(loc: Location) -> bool:
    if not is_url(loc):
        return Path(loc).is_dir()
    fs, path = filesystem(loc)
    with reaching(loc):
        return fs.isdir(path)


def is_file(loc: Location) -> bool:
    if not is_url(loc):
        return Path(loc).is_file()
    fs, path = filesystem(loc)
    with reaching(loc):
        return fs.isfile(path)


def exists(loc: Location) -> bool:
    if not is_url(loc):
        return Path(loc).exists()
    fs, path = filesystem(loc)
    with reaching(loc):
        return fs.exists(path)


def list_files(loc: Location) -> list[Location]:
    """Every file under the directory ``loc``, recursively, hidden names passed over.

    Hidden names are editor backups, macOS ``._`` resource forks and
    half-written temporaries, never data.
    """
    if not is_url(loc):
        def fail(err: OSError):
            raise InputError(f"{err.filename}: cannot list the directory: {err.strerror}")

        files = []
        for parent, dirs, names in os.walk(loc, onerror=fail):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            files += [Path(parent, n) for n in names if not n.startswith(".")]
        return files
    fs, path = filesystem(loc)
    base = path.rstrip("/")
    try:
        with reaching(loc):
            found = fs.find(base)
    except OSError as err:
        raise InputError(f"{loc}: cannot list the directory: {err}") from None
    return [fs.unstrip_protocol(p) for p in found
            if not any(part.startswith(".") for part in posixpath.relpath(p, base).split("/"))]


def glob(pattern: Location) -> list[Location]:
    """Files and directories matching a glob pattern (``**`` included)."""
    if not is_url(pattern):
        import glob as stdlib_glob
        return [Path(p) for p in stdlib_glob.glob(str(pattern), recursive=True)]
    fs, path = filesystem(pattern)
    with reaching(pattern):
        return [fs.unstrip_protocol(p) for p in fs.glob(path)]


def name(loc: Location) -> str:
    """The last component of a location."""
    return Path(loc).name if not is_url(loc) else posixpath.basename(loc.rstrip("/"))


def parent(loc: Location) -> Location:
    if not is_url(loc):
        return Path(loc).parent
    return loc.rstrip("/").rsplit("/", 1)[0]


def join(loc: Location, *parts: str) -> Location:
    if not is_url(loc):
        return Path(loc, *parts)
    return "/".join([loc.rstrip("/"), *parts])


def absolute(loc: Location) -> Location:
    return Path(os.path.abspath(loc)) if not is_url(loc) else loc


def common_root(locs: list[Location]) -> Location | None:
    """The deepest directory holding every location, or None if they share none (local and remote mixed)."""
    if not locs:
        return None
    if all(not is_url(p) for p in locs):
        return Path(os.path.commonpath([str(Path(p).parent) for p in locs]))
    if not all(is_url(p) for p in locs):
        return None
    parents = [parent(p).split("/") for p in locs]
    common = os.path.commonprefix(parents)
    return "/".join(common) if len(common) > 2 else None   # past "s3:", "", bucket


def relative(loc: Location, root: Location | None) -> str:
    """``loc`` as a POSIX path relative to ``root``; its name alone when there is no root."""
    if root is None:
        return name(loc)
    if not is_url(loc) and not is_url(root):
        return Path(os.path.relpath(loc, root)).as_posix()
    return posixpath.relpath(str(loc), str(root))


def local_copy(url: str) -> Path:
    """A local copy of the directory tree at ``url`` (an index), fetched again where it changed.

    Files come through fsspec's ``filecache``, which checks each cached file
    against the remote one's version tag (``check_files``) and fetches it
    again when it differs. The tree is then laid out under a directory keyed
    by the URL and the listing's sizes and tags, as hard links to the
    cached files: a changed remote index gets a new tree, an unchanged one is
    reused without a download.
    """
    fs, root = filesystem(url)
    root = root.rstrip("/")
    try:
        listing = fs.find(root, detail=True)
    except OSError as err:
        raise InputError(f"{url}: cannot list the index: {err}") from None
    if not listing:
        raise InputError(f"{url}: no index here")
    files = {posixpath.relpath(p, root): d for p, d in sorted(listing.items())
             if not any(part.endswith(".partial") for part in posixpath.relpath(p, root).split("/")[:-1])}
    key = hashlib.sha256(url.encode())
    for rel, details in files.items():
        stamp = next((details[k] for k in (*_TAGS, *_TIMES) if details.get(k) is not None), None)
        key.update(repr((rel, details.get("size"), str(stamp))).encode())
    base = cache_dir() / "remote"
    tree = base / "trees" / key.hexdigest()[:32]
    if (tree / ".complete").exists():
        return tree
    cached = fsspec.filesystem("filecache", fs=fs, cache_storage=str(base / "files"), check_files=True)
    staging = tree.with_name(f".{tree.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    for rel in files:
        target = staging / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with cached.open(posixpath.join(root, rel), "rb") as stream:   # the cached copy, fetched if stale
            # A hard link: the index holds its own files (it refuses links leading out of it), at no copy.
            os.link(stream.name, target)
    (staging / ".complete").touch()
    try:
        os.rename(staging, tree)
    except OSError:          # another process laid out the same tree first
        pass
    return tree
