"""Writing a selection where the next tool reads it.

A selection goes to stdout as JSON lines, to one file whose name says its
format (``.jsonl``, ``.jsonl.gz``, ``.jsonl.zst``, ``.parquet``), or to a
directory of shards of about a chosen size with a manifest beside them (what a
data card needs): the form that training loaders (``datasets``, datatrove)
read. Any path may be an fsspec URL (``s3://``, ``gs://``, ``hf://``).

A local file or directory is written under a temporary name and renamed at the
end, so an interrupted or failed query leaves either the whole result or
nothing. Remotely each object appears whole when its upload completes, and a
directory's manifest is written last.
"""
from __future__ import annotations

import datetime
import gzip
import json
import re
import sys
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from fsspec.implementations.local import LocalFileSystem

from nagindex.atomic import atomic_path
from nagindex.errors import NagindexError
from nagindex.storage import filesystem

EXTENSIONS = {".jsonl": "jsonl", ".jsonl.gz": "jsonl.gz", ".jsonl.zst": "jsonl.zst", ".parquet": "parquet"}
FORMATS = tuple(EXTENSIONS.values())
MANIFEST = ".nagindex-selection.json"
SHARD_PREFIX = "part-"
DEFAULT_SHARD_SIZE = "500MB"
DEFAULT_DIRECTORY_FORMAT = "parquet"
# A shard is closed once it reaches its size; it is fed in batches of about an
# eighth of that, so no shard ends more than an eighth over.
_BATCHES_PER_SHARD = 8
_BATCH_ROWS = 65536
_BYTE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str | int) -> int:
    """``500MB``, ``1.5GB``, ``256MiB`` or a plain number of bytes."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*", str(text).lower())
    if not m or float(m[1]) * _BYTE_UNITS[m[2] or ""] < 1:
        raise NagindexError(f"--shard-size {text!r}: write a size such as 500MB, 2GB or 256MiB")
    return int(float(m[1]) * _BYTE_UNITS[m[2] or ""])


@dataclass(frozen=True)
class Shard:
    name: str
    documents: int
    bytes: int


@dataclass(frozen=True)
class Destination:
    """Where a selection goes, checked before any work is done.

    ``url`` is None for stdout; ``directory`` means a directory of shards.
    """

    url: str | None
    fmt: str
    directory: bool
    shard_size: int | None = None

    def write(self, table: pa.Table, *, shuffle: bool = False, seed: int = 0,
              manifest: dict | None = None) -> list[Shard]:
        """Write ``table`` (rows permuted with ``seed`` when ``shuffle``); return the files written.

        ``manifest``: what the selection is (index, backbone, settings, targets…),
        written beside a directory's shards with the shards themselves listed.
        """
        if shuffle:
            table = table.take(np.random.default_rng(seed).permutation(table.num_rows))
        if self.url is None:
            for batch in table.to_batches(_BATCH_ROWS):
                sys.stdout.writelines(_jsonl_lines(batch))
            sys.stdout.flush()
            return []
        fs, root = filesystem(self.url)
        if not self.directory:
            return [_write_file(fs, root, table, self.fmt)]
        _check_directory(fs, root, self.url)
        about = {**(manifest or {}), "format": self.fmt, "documents": table.num_rows,
                 "shuffle": {"seed": seed} if shuffle else None}
        if isinstance(fs, LocalFileSystem):
            with atomic_path(root) as tmp:
                fs.makedirs(str(tmp), exist_ok=True)
                return _write_shards(fs, str(tmp), table, self.fmt, self.shard_size, about)
        _remove_selection(fs, root)
        return _write_shards(fs, root, table, self.fmt, self.shard_size, about)


def destination(path: str | None, fmt: str | None = None, shard_size: str | int | None = None) -> Destination:
    """Where ``-o PATH`` (with ``--format``, ``--shard-size``) writes, or a one-line error.

    A file's name says its format; a path ending in ``/`` or naming an existing
    directory is a directory of shards (Parquet unless ``fmt`` says otherwise).
    """
    if fmt is not None and fmt not in FORMATS:
        raise NagindexError(f"--format {fmt}: choose from {', '.join(FORMATS)}")
    if path is None or path == "-":
        if fmt not in (None, "jsonl") or shard_size is not None:
            raise NagindexError("stdout takes plain JSON lines: pass -o FILE for a compressed or Parquet file, "
                                "or -o DIR/ for shards")
        return Destination(None, "jsonl", False)
    if path.endswith("/") or _is_directory(path):
        size = parse_bytes(shard_size if shard_size is not None else DEFAULT_SHARD_SIZE)
        return Destination(path.rstrip("/") or "/", fmt or DEFAULT_DIRECTORY_FORMAT, True, size)
    named = _format_of(path)
    if named is None:
        raise NagindexError(f"-o {path}: name the file .jsonl, .jsonl.gz, .jsonl.zst or .parquet, "
                            "or end the path with / for a directory of shards")
    if fmt is not None and fmt != named:
        raise NagindexError(f"-o {path} --format {fmt}: the file's name says {named}; name it {fmt} or drop --format")
    if shard_size is not None:
        raise NagindexError(f"--shard-size: {path} is one file; end the path with / for a directory of shards")
    return Destination(path, named, False)


def write_selection(table: pa.Table, path: str | None = None, fmt: str | None = None, *,
                    shard_size: str | int | None = None, shuffle: bool = False, seed: int = 0,
                    manifest: dict | None = None) -> list[Shard]:
    """Write a selection's table to stdout (``path`` None or ``-``), a file or a directory of shards."""
    return destination(path, fmt, shard_size).write(table, shuffle=shuffle, seed=seed, manifest=manifest)


def _format_of(path: str) -> str | None:
    name = path.lower()
    return next((f for ext, f in sorted(EXTENSIONS.items(), key=lambda e: -len(e[0])) if name.endswith(ext)), None)


def _is_directory(path: str) -> bool:
    fs, root = filesystem(path)
    return fs.isdir(root)


def _check_directory(fs, root: str, url: str) -> None:
    """A directory of shards replaces only an earlier selection, never other files."""
    if not fs.isdir(root):
        return
    names = {p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)}
    if names and MANIFEST not in names:
        raise NagindexError(f"-o {url}: the directory holds other files ({', '.join(sorted(names)[:3])}…); "
                            "name a new or empty directory, or an earlier selection to replace")


def _remove_selection(fs, root: str) -> None:
    """Delete an earlier selection's files (those its manifest lists), manifest last."""
    manifest = f"{root}/{MANIFEST}"
    if not fs.exists(manifest):
        return
    with fs.open(manifest, "r") as f:
        for shard in json.load(f).get("shards", []):
            fs.rm(f"{root}/{shard['name']}")
    fs.rm(manifest)


def _write_file(fs, root: str, table: pa.Table, fmt: str) -> Shard:
    parent = root.rsplit("/", 1)[0] if "/" in root else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    name = root.rsplit("/", 1)[-1]
    if isinstance(fs, LocalFileSystem):
        with atomic_path(root) as tmp:
            with open(tmp, "wb") as raw:
                size = _write_all(raw, table, fmt)
        return Shard(name, table.num_rows, size)
    with fs.open(root, "wb") as raw:
        return Shard(name, table.num_rows, _write_all(raw, table, fmt))


def _write_all(raw, table: pa.Table, fmt: str) -> int:
    writer = _Writer(raw, fmt, table.schema)
    for batch in table.to_batches(_BATCH_ROWS):
        writer.write(batch)
    return writer.close()


def _write_shards(fs, root: str, table: pa.Table, fmt: str, shard_size: int, about: dict) -> list[Shard]:
    """Shards of about ``shard_size`` bytes on disk, then the manifest that lists them."""
    ext = next(e for e, f in EXTENSIONS.items() if f == fmt)
    row_bytes = max(1, table.nbytes // max(1, table.num_rows))
    rows = int(min(_BATCH_ROWS, max(1, shard_size // _BATCHES_PER_SHARD // row_bytes)))
    batches = table.to_batches(rows) or [pa.RecordBatch.from_pylist([], schema=table.schema)]
    shards: list[Shard] = []
    raw = writer = None
    for i, batch in enumerate(batches):
        if writer is None:
            name = f"{SHARD_PREFIX}{len(shards):05d}{ext}"
            raw = fs.open(f"{root}/{name}", "wb")
            writer, documents = _Writer(raw, fmt, table.schema), 0
        writer.write(batch)
        documents += batch.num_rows
        if raw.tell() >= shard_size or i == len(batches) - 1:
            shards.append(Shard(name, documents, writer.close()))
            raw.close()
            raw = writer = None
    with fs.open(f"{root}/{MANIFEST}", "w") as f:
        json.dump({**about, "shards": [asdict(s) for s in shards]}, f, indent=2, default=str)
        f.write("\n")
    return shards


class _Writer:
    """One output file of one format, fed record batches; the caller owns ``raw``."""

    def __init__(self, raw, fmt: str, schema: pa.Schema):
        self.raw = raw
        self._parquet = pq.ParquetWriter(raw, schema) if fmt == "parquet" else None
        if fmt == "jsonl.gz":
            self._stream = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0)
        elif fmt == "jsonl.zst":
            self._stream = zstandard.ZstdCompressor().stream_writer(raw, closefd=False)
        else:
            self._stream = raw

    def write(self, batch: pa.RecordBatch) -> None:
        if self._parquet is not None:
            self._parquet.write_table(pa.Table.from_batches([batch]), row_group_size=max(1, batch.num_rows))
        else:
            self._stream.write("".join(_jsonl_lines(batch)).encode("utf-8"))

    def close(self) -> int:
        """Finish the file (footer, compressed frame); return its size in bytes."""
        if self._parquet is not None:
            self._parquet.close()
        elif self._stream is not self.raw:
            self._stream.close()
        return self.raw.tell()


def _jsonl_lines(batch: pa.RecordBatch):
    for row in batch.to_pylist():
        yield json.dumps(row, ensure_ascii=False, default=_json_value) + "\n"


def _json_value(value):
    """Corpus fields JSON has no type for: dates and times as ISO 8601, anything else as text."""
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
