"""The layout of an index directory: the one module that knows where everything lies.

::

    my.index/
      manifest.json              format, header, totals and the shards, in index order
      locks/index.lock           held by the one writer of the index (build, --append, merge)
      locks/index.json           who holds it: pid, host, command, since
      locks/00001-of-00004.lock  held by the build of one --shard part (and its .json)
      shards/00000/              a finished shard, part of the index once the manifest lists it
        shard.json               header, documents, tokens, corpus files (path or URL, size, mtime,
                                 a remote file's etag), the split read (if one was chosen), the
                                 text and id fields, the record size limit, and each stored
                                 file's size and sha256
        codes.h5                 the code store (nagindex.store)
        vectors.faiss            one vector per document (nagindex.sketch); absent where the
                                 header records no vectors (an index for the exact scan alone)
        terms.h5                 BM25 term statistics (nagindex.terms), where the header records terms
        skipped.jsonl            records that --skip-bad passed over, if any
      shards/00001.partial/      a build or append in progress, resumable:
        plan.json                what it was asked to do (a rerun must ask the same)
        part-000000.h5 ...       one code store per finished window of documents, with where the
                                 window ends in the corpus (attribute ``end``) and its ids with where
                                 each was read (dataset ``seen``): a rerun reads on from there
      shards/00000-of-00004/     part 0 of 4 of a sharded build, listed by `nagindex merge`

The *header* is what every shard of an index shares for its codes to be
comparable: backbone, its dtype, extraction settings, layers, neurons per type,
vectors, the tokenizer of its term statistics (null without them), and the template that makes a record's text from its fields (its
source, or null where records carry their text in a field): fetching a text
back renders the same one, so its hash is checked against the one indexed.

A shard is finished once its directory has lost the ``.partial`` suffix, and
part of the index once the manifest lists it; both steps are atomic renames,
so a reader sees the old index or the new one, never half of either.

An index is data, possibly from elsewhere: names and paths read from it are
checked before use. Shard names are the ones above; a shard's files must lie
in its own directory (a symbolic link out of the index is refused); the corpus
files a shard names must be absolute, normalised paths (or fsspec URLs) of
corpus file types, whose recorded size is checked before they are read.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from filelock import FileLock, Timeout

from .atomic import remove_leftovers, rename_durably, write_json
from .corpus import SUFFIXES, suffix
from .errors import IndexStateError, InputError
from .template import Template
from .storage import is_url

FORMAT = "nagindex"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
SHARDS = "shards"
LOCKS = "locks"
SHARD_META = "shard.json"
PLAN = "plan.json"
CODES = "codes.h5"
VECTORS = "vectors.faiss"
TERMS = "terms.h5"
SKIPPED = "skipped.jsonl"
PARTIAL = ".partial"
HEADER = ("backbone", "dtype", "settings", "layers", "neurons", "vectors", "template", "terms", "codes")
STORED = (CODES, VECTORS, TERMS, SKIPPED)      # the files of a finished shard whose size and sha256 it records
SHARD_NAME = re.compile(r"(\d{5})(?:-of-(\d{5}))?")
PART_FILE = re.compile(r"part-(\d{6})\.h5")
PART_END = "end"        # attribute of a part file: JSON, where its window ends (ShardDir.mark_part)
PART_SEEN = "seen"      # dataset of a part file: JSON, each of its ids and where it was read
WAIT_FOR_LOCK = 1.0     # seconds a writer waits for a lock that a reader may be probing


def part_name(i: int, n: int) -> str:
    """The shard directory of part ``i`` of ``n``, as ``build --shard i/N`` names it."""
    return f"{i:05d}-of-{n:05d}"


def header_of(meta: dict) -> dict:
    """What every shard of an index shares for its codes to be comparable, from a manifest or shard.json."""
    return {key: meta.get(key) for key in HEADER}


def comparable(meta: dict) -> dict:
    """The header of a manifest, shard.json or plan as indexes compare it: the backbone by its
    weights' hash alone, as its name and path only say where the weights were found."""
    header = header_of(meta)
    if isinstance(header.get("backbone"), dict):
        header["backbone"] = {k: v for k, v in header["backbone"].items() if k not in ("name", "path")}
    return header


def template_of(meta: dict, where: Path) -> Template | None:
    """The template the records of a shard (its shard.json at ``where``) read by; None where they carry
    their text in a field."""
    source = meta.get("template")
    if source is None:
        return None
    try:
        if not isinstance(source, str):
            raise InputError(f"a {type(source).__name__}, not a string")
        return Template(source)
    except InputError as err:
        raise IndexStateError(f"{where}: damaged template ({err})") from None


def differences(before: dict, after: dict, prefix: str = "") -> list[str]:
    """``"settings.top_k: 20, now 10"`` for each leaf where two headers differ."""
    out = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {_one_line(a)}, now {_one_line(b)}")
    return out


def _one_line(value) -> str:
    """A header value as a one-line message shows it: a template of several lines as its repr, a list as its items."""
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "none"
    return repr(value) if isinstance(value, str) and "\n" in value else str(value)


def read_json(path: Path, what: str) -> dict:
    """A JSON object, or one line naming the file."""
    try:
        obj = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise IndexStateError(f"{path}: missing {what}") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexStateError(f"{path}: damaged {what} ({e})") from None
    if not isinstance(obj, dict):
        raise IndexStateError(f"{path}: damaged {what} (not a JSON object)")
    return obj


def sha256_of(path: Path, block: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def _inside(path: Path, root: Path) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(root) + os.sep)


@dataclass(frozen=True)
class ShardDir:
    """One shard's directory, finished or ``.partial``."""

    name: str
    path: Path

    @property
    def codes(self) -> Path:
        return self.path / CODES

    @property
    def vectors(self) -> Path:
        return self.path / VECTORS

    @property
    def terms(self) -> Path:
        return self.path / TERMS

    @property
    def skipped(self) -> Path:
        return self.path / SKIPPED

    @property
    def plan_path(self) -> Path:
        return self.path / PLAN

    @property
    def is_finished(self) -> bool:
        return (self.path / SHARD_META).is_file()

    def part(self, k: int) -> Path:
        return self.path / f"part-{k:06d}.h5"

    def parts(self) -> list[Path]:
        """The finished windows' part files, in window order."""
        found = [p for p in self.path.iterdir() if PART_FILE.fullmatch(p.name)] if self.path.is_dir() else []
        return sorted(found)

    @staticmethod
    def mark_part(path: Path, end: dict, seen: dict[str, str]) -> None:
        """Record in a written part file (before it is renamed into place) where its window ends.

        ``end`` is JSON: the corpus position after the window's last document,
        the records skipped since the previous window and the documents so far;
        ``seen`` maps each of the window's ids to where it was read (file and
        line or row), which names the first copy of an id that comes again.
        Both are JSON text, which a rerun reads back in one parse a part.
        """
        with h5py.File(path, "r+") as f:
            f.attrs[PART_END] = json.dumps(end)
            f.create_dataset(PART_SEEN, data=np.frombuffer(json.dumps(seen).encode(), np.uint8))

    def part_end(self, k: int) -> tuple[dict, dict[str, str]] | None:
        """What :meth:`mark_part` recorded in window ``k``'s part, or None where there is no such part
        or one that recorded nothing (written by an older nagindex) or not one id a row."""
        path = self.part(k)
        if not path.is_file():
            return None
        with h5py.File(path, "r") as f:
            if PART_END not in f.attrs or PART_SEEN not in f:
                return None
            end, seen = json.loads(f.attrs[PART_END]), json.loads(f[PART_SEEN][...].tobytes())
            return (end, seen) if len(seen) == int(f.attrs["rows"]) else None

    def read_plan(self) -> dict | None:
        return read_json(self.plan_path, "build plan") if self.plan_path.exists() else None

    def start(self, plan: dict) -> None:
        """Create the directory of a new build and record what it was asked to do."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.plan_path, plan)

    def read_meta(self) -> dict:
        """shard.json, checked: its name, its corpus paths, the files it records."""
        meta = read_json(self.path / SHARD_META, "shard metadata")
        where = self.path / SHARD_META
        for key in ("documents", "tokens", "files", "stored"):
            if key not in meta:
                raise IndexStateError(f"{where}: damaged shard metadata (no {key!r})")
        for f in meta["files"]:
            p = f.get("path") if isinstance(f, dict) else None
            if not isinstance(p, str) or not (is_url(p) or os.path.isabs(p) and os.path.normpath(p) == p) \
                    or "\0" in p or suffix(p) is None:
                raise IndexStateError(f"{where}: refusing corpus file {p!r}: not an absolute, normalised path "
                                      f"or a URL of a corpus file ({', '.join(SUFFIXES)})")
        if not set(meta["stored"]) <= set(STORED):
            raise IndexStateError(f"{where}: records unknown files {sorted(set(meta['stored']) - set(STORED))}")
        return meta

    def write_meta(self, meta: dict) -> dict:
        """Write shard.json, recording the size and sha256 of every stored file (written before it)."""
        stored = {name: {"bytes": (self.path / name).stat().st_size, "sha256": sha256_of(self.path / name)}
                  for name in STORED if (self.path / name).is_file()}
        meta = {**meta, "stored": stored}
        write_json(self.path / SHARD_META, meta)
        return meta

    def check_files(self, meta: dict, root: Path) -> None:
        """Every stored file is here, inside the index, with its recorded size: cheap, on every open."""
        required = [CODES] + [VECTORS] * (meta.get("vectors") is not None) + [TERMS] * bool(meta.get("terms"))
        for name in required:
            if name not in meta["stored"]:
                raise IndexStateError(f"{self.path / SHARD_META}: damaged shard metadata (records no {name})")
        for name, want in meta["stored"].items():
            p = self.path / name
            if not p.is_file():
                raise IndexStateError(f"{p}: missing; the shard is damaged, build it again")
            if not _inside(p, root):
                raise IndexStateError(f"{p}: refusing a file outside the index ({os.path.realpath(p)})")
            if p.stat().st_size != want["bytes"]:
                raise IndexStateError(f"{p}: {p.stat().st_size:,} bytes, shard.json records {want['bytes']:,}: "
                                      "the file is truncated or was changed; build this shard again")

    def damaged_files(self, meta: dict) -> list[str]:
        """The stored files whose content no longer matches the sha256 recorded at build time."""
        out = []
        for name, want in meta["stored"].items():
            p = self.path / name
            if not p.is_file():
                out.append(f"{p}: missing")
            elif sha256_of(p) != want["sha256"]:
                out.append(f"{p}: sha256 differs from the one recorded at build time: the file is damaged")
        return out

    def clean(self) -> None:
        """Remove what killed writers left here (temporary files); only while holding its lock."""
        remove_leftovers(self.path)


class Lock:
    """A writer's lock (``filelock``) and, beside it, who holds it.

    The operating system drops the lock when its holder dies, kill -9 included;
    the holder's record then stays, stale, until the next writer replaces it.
    """

    def __init__(self, path: Path, what: str):
        self.path, self.what = path, what
        self.record = path.with_suffix(".json")
        self._lock = FileLock(path)

    def __enter__(self) -> "Lock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=WAIT_FOR_LOCK)
        except Timeout:
            holder = self.holder()
            who = describe_holder(holder) if holder else "another process"
            raise IndexStateError(f"{self.what} is being written by {who}; wait for it to finish") from None
        try:
            # A holder killed while writing its record left a temporary copy; only this lock's holder writes it.
            remove_leftovers(self.record.parent, of=self.record.name)
            write_json(self.record, {"pid": os.getpid(), "host": socket.gethostname(),
                                     "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                                     "since": time.strftime("%Y-%m-%d %H:%M:%S %Z")})
        except BaseException:
            self._lock.release()        # a record that cannot be written (a full disk) leaves the lock free
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.record.unlink(missing_ok=True)
        self._lock.release()

    def holder(self) -> dict | None:
        """Who holds the lock now, or None if nobody does (a stale record is not a holder)."""
        if not self.path.exists():
            return None
        probe = FileLock(self.path)
        try:
            probe.acquire(timeout=0)
        except Timeout:
            with contextlib.suppress(IndexStateError):
                return read_json(self.record, "lock record")
            return {}
        except OSError:          # a read-only index: trust the record
            with contextlib.suppress(IndexStateError):
                return read_json(self.record, "lock record")
            return None
        probe.release()
        return None


def describe_holder(holder: dict) -> str:
    if not holder:
        return "another process"
    return f"pid {holder.get('pid')} on {holder.get('host')} (`{holder.get('command')}`, since {holder.get('since')})"


class IndexDir:
    """An index directory: its paths, manifest, shard metadata and locks."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def shards_path(self) -> Path:
        return self.path / SHARDS

    # -- shards --------------------------------------------------------------

    def shard(self, name: str) -> ShardDir:
        """The finished shard ``name``; a name that is not a shard's is refused."""
        if not isinstance(name, str) or not SHARD_NAME.fullmatch(name):
            raise IndexStateError(f"{self.manifest_path}: refusing shard name {name!r} "
                                  "(shard names are 00000 or 00000-of-00004)")
        return ShardDir(name, self.shards_path / name)

    def work(self, name: str) -> ShardDir:
        """The unfinished (``.partial``) directory of shard ``name``."""
        return ShardDir(name, self.shards_path / f"{self.shard(name).name}{PARTIAL}")

    def finish(self, work: ShardDir) -> ShardDir:
        """Rename a shard's finished work directory into place."""
        final = self.shard(work.name)
        rename_durably(work.path, final.path)
        return final

    def partial_names(self) -> list[str]:
        """Shards whose build is unfinished, by name."""
        return sorted(p.name[: -len(PARTIAL)] for p in self._entries()
                      if p.name.endswith(PARTIAL) and SHARD_NAME.fullmatch(p.name[: -len(PARTIAL)]))

    def next_name(self, listed: int) -> str:
        """The name a new unsharded build or append takes: the unfinished one's, else the next number."""
        unfinished = [n for n in self.partial_names() if "-of-" not in n]
        return unfinished[0] if unfinished else f"{listed:05d}"

    def unlisted_parts(self, listed: set[str]) -> dict[tuple[int, int], bool]:
        """``(i, N) -> finished`` for every ``--shard`` directory the manifest does not list."""
        found: dict[tuple[int, int], bool] = {}
        for path in self._entries():
            name = path.name.removesuffix(PARTIAL)
            m = SHARD_NAME.fullmatch(name)
            if not path.is_dir() or not m or not m[2] or name in listed:
                continue
            key = (int(m[1]), int(m[2]))
            found[key] = found.get(key, False) or (path.name == name and (path / SHARD_META).exists())
        return found

    def _entries(self) -> list[Path]:
        return sorted(self.shards_path.iterdir()) if self.shards_path.is_dir() else []

    # -- the manifest --------------------------------------------------------

    def read_manifest(self) -> dict | None:
        """The manifest, checked (format, version, shard names), or None where there is none yet."""
        if not self.manifest_path.exists():
            return None
        manifest = read_json(self.manifest_path, "manifest")
        if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
            raise IndexStateError(
                f"{self.manifest_path}: format {manifest.get('format')!r} version "
                f"{manifest.get('format_version')!r}; this nagindex reads {FORMAT!r} version {FORMAT_VERSION}: "
                "build the index again")
        for key in ("backbone", "settings", "layers", "neurons", "vectors", "documents", "tokens", "shards"):
            if key not in manifest:
                raise IndexStateError(f"{self.manifest_path}: damaged manifest (no {key!r})")
        for entry in manifest["shards"]:
            self.shard(entry.get("name") if isinstance(entry, dict) else entry)
        return manifest

    def listed(self, manifest: dict | None) -> list[ShardDir]:
        return [self.shard(s["name"]) for s in manifest["shards"]] if manifest else []

    def write_manifest(self, metas: list[dict], header: dict) -> dict:
        """Replace the manifest, atomically, by one joining the shards of ``metas`` in this order."""
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **header,
            "documents": sum(int(s["documents"]) for s in metas),
            "tokens": sum(int(s["tokens"]) for s in metas),
            "shards": [{"name": s["name"], "documents": s["documents"], "tokens": s["tokens"]} for s in metas],
        }
        write_json(self.manifest_path, manifest)
        return manifest

    # -- locks ---------------------------------------------------------------

    def lock(self) -> Lock:
        """The lock of the index's one writer: build, --append, merge."""
        return Lock(self.path / LOCKS / "index.lock", f"{self.path}")

    def part_lock(self, name: str) -> Lock:
        """The lock of the build of one ``--shard`` part: parts are built side by side."""
        return Lock(self.path / LOCKS / f"{self.shard(name).name}.lock", f"{self.path}: part {name}")

    def writer(self) -> dict | None:
        """Who is writing the index now (its lock's holder), or None."""
        return self.lock().holder()

    def clean(self, listed: list[ShardDir]) -> None:
        """Remove what killed writers left in the index and its finished shards; only under the index lock."""
        remove_leftovers(self.path)
        for shard in listed:
            shard.clean()
