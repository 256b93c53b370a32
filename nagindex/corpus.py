"""Reading documents from JSON lines, Parquet, Arrow (`datasets` folders) and plain-text files, local or remote.

One reader serves the corpus at build time, the target examples at query time
and the texts shown with results, so that a document's id, text and position
agree whichever way it is reached. The index stores only positions; the text
is fetched back from the source file when it is needed.

A corpus on remote storage (an fsspec URL) is listed and read through
:mod:`nagindex.storage`, streaming, with the same checks as a local one.

Every problem is reported with the file and the line or row at fault: in a
corpus of millions of records, "malformed JSON" alone is no help.
"""
from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import io
import json
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from . import storage
from .storage import Location
from .errors import InputError
from .template import Template

SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json", ".json.gz", ".json.zst", ".parquet", ".arrow", ".txt")
#: Formats whose records are rows, found again by their row number.
_ROWS = (".parquet", ".arrow")

#: Bytes of one record at most, unless told otherwise: far beyond any document
#: worth training on, and what one record may cost to read.
MAX_RECORD_SIZE = 16 << 20
_PARQUET_BATCH_ROWS = 1024
_READ_CHUNK = 1 << 20
# Files written with `zstd --long` need a window beyond the library's default limit.
_ZSTD_MAX_WINDOW = 1 << 31
# Compressed bytes decoded at a time: a zstd block of 4 bytes can stand for 128 KiB,
# so this bounds what one step holds (8 MiB) however the file was made.
_ZSTD_SLICE = 256
# What a missing, forbidden, truncated or corrupt file raises while being read.
_UNREADABLE = (OSError, EOFError, zlib.error, zstandard.ZstdError, pa.ArrowException)

# A `datasets` save_to_disk folder: its state lists its data files; a DatasetDict lists its splits.
_DATASET_STATE, _DATASET_INFO, _DATASET_DICT = "state.json", "dataset_info.json", "dataset_dict.json"
# The Hugging Face conventions for a file's split: `train-00000-of-00004.parquet` (any name),
# or a file or directory named after a split (`test.jsonl`, `validation/`, `dev-2.parquet`).
_SHARD_OF_SPLIT = re.compile(r"^(\w+(?:\.\w+)*?)-\d{5}-of-\d{5}")
_SPLIT_WORD = re.compile(r"^(train|training|validation|valid|val|dev|test|testing|eval|evaluation)(?:$|[-._ 0-9])")


def find_files(spec: str | os.PathLike | Sequence[str | os.PathLike], *, on_error: str = "raise",
               skipped: list[Skipped] | None = None) -> list[Location]:
    """Resolve what the user named (paths, globs, fsspec URLs) into the files to read, in a stable order.

    The order fixes each document's position in the index, so it must not
    depend on the order in which the file system lists a directory. A
    symbolic link that leads nowhere is an error, or with ``on_error="skip"``
    an entry of ``skipped``.
    """
    specs = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    if not specs:
        raise InputError("no corpus files given")
    found: set[Location] = set()
    for item in specs:
        found.update(_expand(item))
    files = []
    for loc in sorted(found, key=_order):
        problem = None if storage.is_url(loc) else _broken_link(loc)
        if problem is None:
            files.append(loc)
        elif on_error == "skip":
            if skipped is not None:
                skipped.append(Skipped(_display(loc), problem, rest_of_file=True))
        else:
            raise InputError(f"{_display(loc)}: {problem}")
    return files


def _order(loc: Location) -> list[str]:
    """Sort key of a location: by path components, local paths and URLs alike."""
    return str(loc).split("/")


def _broken_link(path: Path) -> str | None:
    """What is wrong with a symbolic link that cannot be followed to a file, if it is one."""
    try:
        os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"a dangling symbolic link (to {os.readlink(path)}, which does not exist)"
        raise
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "a symbolic link that loops back on itself"
        raise
    return None


def _expand(item: str | os.PathLike) -> list[Location]:
    loc = storage.location(item)
    if storage.is_dir(loc):
        files = _walk(loc)
    elif storage.is_file(loc):
        if _suffix(loc) is None:
            raise InputError(f"{item}: unsupported file type; expected one of {', '.join(SUFFIXES)}")
        files = [loc]
    elif not storage.is_url(loc) and os.path.islink(loc):
        files = [loc]
    elif any(c in str(loc) for c in "*?["):
        files = []
        for match in storage.glob(loc):
            if storage.is_dir(match):
                files += _walk(match)
            elif _suffix(match):
                files.append(match)
    else:
        raise InputError(f"{item}: no such file or directory")
    if not files:
        raise InputError(f"{item}: no {', '.join(SUFFIXES)} files found")
    return [storage.absolute(f) for f in files]


def _walk(directory: Location) -> list[Location]:
    """Supported files under ``directory`` (hidden names passed over: see :func:`storage.list_files`).

    A `datasets` ``save_to_disk`` folder gives the data files its state
    lists, not its metadata nor the cache files that ``map`` leaves beside them.
    """
    folders: dict[Location, list[Location]] = {}
    for loc in storage.list_files(directory):
        folders.setdefault(storage.parent(loc), []).append(loc)
    files = []
    for folder, locs in folders.items():
        names = {storage.name(loc) for loc in locs}
        if {_DATASET_STATE, _DATASET_INFO} <= names:
            files += _dataset_files(folder, names)
        else:
            files += [loc for loc in locs if _suffix(loc) and storage.name(loc) != _DATASET_DICT]
    return files


def _dataset_files(folder: Location, present: set[str]) -> list[Location]:
    """The data files that the state of a `datasets` folder lists."""
    state = storage.join(folder, _DATASET_STATE)
    try:
        with storage.open_input(state) as f:
            listed = [d["filename"] for d in json.load(f)["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"{_display(state)}: not the state of a `datasets` folder ({_cannot_read(err)})") from None
    for name in listed:
        if name not in present or "/" in name or _suffix(name) != ".arrow":
            raise InputError(f"{_display(state)}: lists the data file {name!r}, which is not in the folder")
    return [storage.join(folder, name) for name in listed]


def choose_split(files: Sequence[Location], split: str | None) -> list[Location]:
    """The files of one split of a corpus that holds several (train, test ...), in their order.

    Splits are told by the Hugging Face conventions (``_SHARD_OF_SPLIT``,
    ``_SPLIT_WORD``, the folders of a saved DatasetDict). Mixing them would
    quietly put test documents among training ones, so several splits without
    ``split`` chosen are an error naming them.
    """
    of = _splits(files)
    found = sorted({s for s in of.values() if s is not None})
    if split is None:
        if len(found) > 1:
            raise InputError(f"the corpus holds several splits ({', '.join(found)}): choose one with --split NAME "
                             "(and --append the others, if the index should hold them all)")
        return list(files)
    chosen = [f for f in files if of[f] == split]
    if not chosen:
        raise InputError(f"--split {split}: no such split in the corpus (splits found: {', '.join(found) or 'none'})")
    return chosen


def _splits(files: Sequence[Location]) -> dict[Location, str | None]:
    """The split of each file, None where its name and folders name none."""
    root = storage.common_root(list(files))
    dataset_split: dict[Location, str | None | bool] = {}   # a folder's split; False: not a `datasets` folder

    def split_of(loc: Location) -> str | None:
        folder = storage.parent(loc)
        if folder not in dataset_split:
            if storage.exists(storage.join(folder, _DATASET_STATE)) and storage.exists(storage.join(folder, _DATASET_INFO)):
                in_dict = storage.exists(storage.join(storage.parent(folder), _DATASET_DICT))
                dataset_split[folder] = storage.name(folder) if in_dict else None
            else:
                dataset_split[folder] = False
        if dataset_split[folder] is not False:
            return dataset_split[folder]
        name = storage.name(loc)
        if match := _SHARD_OF_SPLIT.match(name) or _SPLIT_WORD.match(name.lower()):
            return match.group(1)
        folders = storage.relative(loc, root).split("/")[:-1] if root is not None else []
        return next((m.group(1) for d in reversed(folders) if (m := _SPLIT_WORD.match(d.lower()))), None)

    return {loc: split_of(loc) for loc in files}


def _suffix(path: Location) -> str | None:
    name = storage.name(path).lower()
    return next((s for s in SUFFIXES if name.endswith(s)), None)


def data_stem(path: Location) -> str:
    """A file's name without the data suffix: ``mmlu.stem.jsonl.gz`` is ``mmlu.stem``."""
    suffix = _suffix(path)
    name = storage.name(path)
    return name[: len(name) - len(suffix)] if suffix else Path(name).stem


@dataclass(frozen=True)
class Position:
    """A place in a list of corpus files from which reading can start again (``read_records(start=)``).

    A resumed build starts after the last document it had finished, without
    reading what lies before: a plain file is seeked into, a compressed one
    decompressed up to ``offset`` and the bytes discarded, a Parquet file
    entered at the row group holding ``offset``, an Arrow file's batches passed over.
    """

    file: int = 0      # the index of the file in the list
    offset: int = 0    # JSON lines: byte of the decompressed content where a line starts; Parquet, Arrow: row; text: 0
    line: int = 0      # JSONL: how many lines lie before ``offset`` (records are named by line)


@dataclass(frozen=True)
class Record:
    """One document, with what is needed to find it again in its file."""

    id: str
    text: str
    file_index: int
    offset: int  # JSON lines: byte offset of the line (decompressed); Parquet, Arrow: row; text: 0
    where: str
    fields: dict
    after: Position = Position()   # where reading starts again to go on after this record
    # JSONL: how far reading the file as stored (compressed, for a compressed file) had got once this
    # record was read: what a build's progress counts against the file's size.
    position: int = 0


@dataclass
class Skipped:
    """A record, or the rest of a file, left out in ``on_error="skip"`` mode."""

    where: str
    reason: str
    rest_of_file: bool = False   # everything from ``where`` to the end of its file is missing


def read_records(
    files: Sequence[Location],
    text_field: str = "text",
    id_field: str = "id",
    *,
    extra_fields: Sequence[str] = (),
    on_error: str = "raise",
    skipped: list[Skipped] | None = None,
    seen_ids: dict[str, str] | None = None,
    root: Location | None = None,
    max_record_size: int = MAX_RECORD_SIZE,
    template: Template | None = None,
    start: Position | None = None,
) -> Iterator[Record]:
    """Yield the usable records of ``files``, in order, from ``start`` (a ``Record.after``) if given.

    ``on_error="raise"`` stops at the first bad record, so nothing is lost
    unnoticed; ``"skip"`` lets a long build get past a few bad records and
    accounts for each of them in ``skipped``. ``seen_ids`` maps every id to
    where it was first seen: pass one dict to several calls to keep ids unique
    across them. Default ids are made from paths relative to ``root`` so that
    they do not change when the corpus is moved. A record (a line, a text
    file, a Parquet text) over ``max_record_size`` bytes is a bad record; no
    more than that is read of it. With a ``template``, a record's text is the
    template rendered over its fields instead of its ``text_field``. Reading from ``start``
    yields what the whole read yields after the record whose ``after`` it is, ids and
    positions the same; ``seen_ids`` must then hold the ids read before it.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    reader = _Reader(
        text_field,
        id_field,
        tuple(extra_fields),
        on_error,
        skipped if skipped is not None else [],
        seen_ids if seen_ids is not None else {},
        max_record_size,
        template,
    )
    start = start or Position()
    for index, path in enumerate(files):
        if index < start.file:
            continue
        path = storage.location(path)
        name = storage.relative(path, root) if root is not None else storage.name(path)
        kind = _suffix(path)
        read = reader.rows if kind in _ROWS else reader.txt if kind == ".txt" else reader.jsonl
        yield from read(path, index, name, _display(path), start if index == start.file else Position(index))


def known_documents(path: Location) -> int | None:
    """How many records ``path`` holds, where that costs no reading of its contents: a Parquet footer, the
    batch headers of a local Arrow file (memory-mapped: its batches are not read), one for a text file; None
    for JSON lines and remote Arrow files, which must be read through to be counted."""
    kind = _suffix(path)
    try:
        if kind == ".txt":
            return 1
        if kind == ".parquet":
            with _parquet(path) as file:
                return file.metadata.num_rows
        if kind == ".arrow" and not storage.is_url(path):
            with _arrow(path) as (_, batches):
                return sum(b.num_rows for b in batches)
    except _UNREADABLE:
        pass                     # the build names the damage when it reads the file
    return None


def _display(path: Location) -> str:
    """``path`` as the user would write it: relative to the working directory when under it."""
    if storage.is_url(path):
        return path
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


class _Reader:
    """The settings of one ``read_records`` call and what it has seen so far."""

    def __init__(self, text_field, id_field, extra_fields, on_error, skipped, seen_ids, max_record_size, template):
        self.max_record_size = max_record_size
        self.text_field = text_field
        self.template = template
        self.id_field = id_field
        self.extra_fields = extra_fields
        self.on_error = on_error
        self.skipped = skipped
        self.seen_ids = seen_ids

    def jsonl(self, path: Location, index: int, name: str, label: str, at: Position) -> Iterator[Record]:
        line_no, offset = at.line, at.offset
        try:
            with storage.open_input(path) as stored, _decompressed(stored, path) as stream:
                _skip_to(stream, offset)
                while line := stream.readline(self.max_record_size + 1):
                    line_no += 1
                    start, offset = offset, offset + len(line)
                    where = f"{label}, line {line_no}"
                    if len(line) > self.max_record_size and not line.endswith(b"\n"):
                        offset += _skip_line(stream)
                        self._bad(where, self._too_large(offset - start))
                        continue
                    if line.isspace():
                        continue
                    obj = self._parse(line, where)
                    if obj is None:
                        continue
                    record = self._record(obj, f"{name}:{line_no}", index, start, where,
                                          Position(index, offset, line_no), stored.tell())
                    if record:
                        yield record
        except _UNREADABLE as err:
            if line_no:
                self._lost(f"{label}, line {line_no + 1}", err,
                           f"after line {line_no} (byte {offset:,} of its decompressed content)")
            else:
                self._lost(label, err)

    def rows(self, path: Location, index: int, name: str, label: str, at: Position) -> Iterator[Record]:
        """A Parquet or Arrow file, a batch of the wanted columns at a time."""
        row = 0
        try:
            text = text_columns(self.text_field, self.template)
            wanted = (*text, self.id_field, *self.extra_fields)

            def columns(present: list[str]) -> list[str] | None:
                # A template field the file lacks reads every column, for the error to name what records hold.
                return [c for c in dict.fromkeys(wanted) if c in present] if set(text) <= set(present) else None

            with _row_batches(path, columns, at.offset) as (present, row, batches):
                if self.template is None and self.text_field not in present:
                    self._bad(label, f"no {self.text_field!r} column (columns: {', '.join(present)})")
                    return
                for batch in batches:
                    skip = min(max(at.offset - row, 0), len(batch))
                    row += skip
                    for obj in batch.slice(skip).to_pylist():
                        record = self._record(obj, f"{name}:{row}", index, row, f"{label}, row {row}",
                                              Position(index, row + 1))
                        row += 1
                        if record:
                            yield record
        except _UNREADABLE as err:
            if row:
                self._lost(f"{label}, row {row}", err, f"after row {row - 1}")
            else:
                self._lost(label, err)

    def txt(self, path: Location, index: int, name: str, label: str, at: Position) -> Iterator[Record]:
        try:
            size = storage.info(path)["size"]
            if size > self.max_record_size:
                self._bad(label, self._too_large(size))
                return
            with storage.open_input(path) as f:
                data = f.read(self.max_record_size + 1)
        except OSError as err:
            self._lost(label, err)
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            line_no = data.count(b"\n", 0, err.start) + 1
            self._bad(f"{label}, line {line_no}", f"invalid UTF-8 at byte {err.start} of the file")
            return
        record = self._record({self.text_field: text}, name, index, 0, label, Position(index + 1))
        if record:
            yield record

    def _parse(self, line: bytes, where: str) -> dict | None:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            return self._bad(where, f"invalid UTF-8 at byte {err.start} of the line")
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            return self._bad(where, f"malformed JSON: {err.msg} at column {err.colno}")
        if not isinstance(obj, dict):
            return self._bad(where, f"expected a JSON object, found {_kind(obj)}")
        return obj

    def _record(self, obj: dict, default_id: str, index: int, offset: int, where: str,
                after: Position, position: int = 0) -> Record | None:
        if self.template is not None:
            try:
                text = self.template.render(obj)
            except InputError as err:
                return self._bad(where, str(err))
            what = "the template's text"
        elif self.text_field not in obj:
            fields = ", ".join(map(repr, obj)) or "none"
            return self._bad(where, f"no {self.text_field!r} field (fields: {fields})")
        else:
            text, what = obj[self.text_field], repr(self.text_field)
            if not isinstance(text, str):
                return self._bad(where, f"{what} is {_kind(text)}, not a string")
        if not text.strip():
            return self._bad(where, f"{what} is empty or only whitespace")
        if len(text) > self.max_record_size:
            return self._bad(where, self._too_large(len(text.encode("utf-8"))))

        doc_id = obj.get(self.id_field, default_id)
        if isinstance(doc_id, int) and not isinstance(doc_id, bool):
            doc_id = str(doc_id)
        if not isinstance(doc_id, str):
            return self._bad(where, f"{self.id_field!r} is {_kind(doc_id)}; ids are strings or integers")
        if not doc_id:
            return self._bad(where, f"{self.id_field!r} is empty")

        problem = _surrogate(text, what) or _surrogate(doc_id, repr(self.id_field))
        if problem:
            return self._bad(where, problem)
        first = self.seen_ids.get(doc_id)
        if first is not None:
            return self._bad(where, f"duplicate id {doc_id!r}, first seen at {first}")
        self.seen_ids[doc_id] = where

        fields = {k: obj[k] for k in self.extra_fields if k in obj}
        return Record(doc_id, text, index, offset, where, fields, after, position)

    def _too_large(self, size: int) -> str:
        return f"the record is {size:,} bytes, over the limit of {self.max_record_size:,} (--max-record-size)"

    def _bad(self, where: str, reason: str, rest_of_file: bool = False) -> None:
        if self.on_error == "raise":
            raise InputError(f"{where}: {reason}")
        self.skipped.append(Skipped(where, reason, rest_of_file))

    def _lost(self, where: str, err: BaseException, read_until: str | None = None) -> None:
        """A file that cannot be read on from ``where``: what was read stays, the rest is missing."""
        if read_until is None:
            self._bad(where, _cannot_read(err), rest_of_file=True)
        else:
            self._bad(where, f"{_cannot_read(err)}; the readable part ends {read_until}: "
                             "the rest of the file is missing", rest_of_file=True)


def number(value) -> float:
    """A record field as a number: NaN where it is missing or not a number (booleans are not)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


def _surrogate(value: str, field: str) -> str | None:
    """The problem with a lone surrogate in ``value``, if it has one.

    A JSON ``\\ud800`` escape decodes to one, and no UTF-8 consumer
    (tokenizer, HDF5) accepts it: better reported at its line than far into
    a build.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        return f"{field} has an unpaired surrogate \\u{ord(value[err.start]):04x} at character {err.start}"
    return None


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def _cannot_read(err: BaseException) -> str:
    detail = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return f"cannot read the file: {detail}"


def text_hashes(texts: Iterable[str]) -> np.ndarray:
    """A 64-bit hash of each text (BLAKE2b of its UTF-8), as the index records it.

    It tells whether the record found at an indexed position is still the one
    that was scored: 8 bytes a document, the same in every process.
    """
    return np.fromiter((int.from_bytes(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest(), "little")
                        for t in texts), np.uint64)


@dataclass(frozen=True)
class Indexed:
    """What an index recorded of the records it fetches back, to tell them from changed ones."""

    ids: Sequence[str]            # the indexed ids, in the order the records are asked for
    hashes: np.ndarray | None     # their text hashes; None for an index that predates them
    id_field: str = "id"
    max_record_size: int = MAX_RECORD_SIZE   # bytes of a record at most, as the build read them


def reroot(path: str | os.PathLike, roots: Sequence[tuple[str | os.PathLike, str | os.PathLike]]) -> Location:
    """Where an indexed corpus file is now, the corpus having moved from each ``old`` to its ``new`` (paths or URLs)."""
    path = storage.location(path)
    for old, new in roots:
        old = storage.location(old)
        if storage.is_url(old) != storage.is_url(path):
            continue
        rel = storage.relative(path, old)
        if rel != ".." and not rel.startswith("../"):
            return storage.location(new) if rel == "." else storage.join(storage.location(new), *rel.split("/"))
    return path


def check_source(path: Location, recorded: dict, *, by_time: bool) -> None:
    """Refuse a corpus file that is not the one indexed, before reading from it.

    A file that is gone or has another size has changed. ``by_time`` also
    refuses another modification time: for records that cannot be verified one
    by one, the time is all there is to go by (a copy that kept its contents
    but not its time passes where each record's text is checked).
    """
    label = _display(path)
    try:
        now = storage.info(path)
    except OSError as err:
        raise InputError(f"{label}: {_cannot_read(err)}; if the corpus has moved, say where it is now "
                         "with --corpus-root OLD=NEW") from None
    if now["size"] != recorded["size"]:
        raise InputError(f"{label}: {now['size']:,} bytes, {recorded['size']:,} when it was indexed: "
                         "the file has changed since; build the index again")
    if by_time and (now.get("mtime"), now.get("etag")) != (recorded.get("mtime"), recorded.get("etag")):
        raise InputError(f"{label}: modified since it was indexed (the index holds no text hashes to check "
                         "its records by); build the index again")


def text_columns(text_field: str, template: Template | None) -> tuple[str, ...]:
    """The fields a record's text is made of: its ``text_field``, or those ``template`` reads."""
    return tuple(sorted(template.fields)) if template is not None else (text_field,)


def fetch_text(path: Location, offset: int, text_field: str = "text", *, template: Template | None = None) -> str:
    """The text of the record at ``offset`` (a ``Record.offset``) in ``path``."""
    return fetch_texts([path], np.zeros(1, np.int64), np.array([offset]), text_field, template=template)[0]


def fetch_texts(paths: Sequence[Location], file_index: np.ndarray, offset: np.ndarray, text_field: str = "text", *,
                template: Template | None = None, indexed: Indexed | None = None) -> list[str]:
    """Texts of many records, in the order given (see :func:`fetch_values`), made as ``read_records`` made
    them: each record's ``text_field``, or ``template`` rendered over its fields."""
    texts: list = [None] * len(offset)
    for i, obj, where in _fetched(paths, file_index, offset, text_columns(text_field, template), text_field,
                                  template, indexed):
        text, problem = _text_of(obj, text_field, template)
        if problem:
            raise InputError(f"{where}: {problem}; has the file changed since it was indexed?")
        texts[i] = text
    return texts


def fetch_values(paths: Sequence[Location], file_index: np.ndarray, offset: np.ndarray, field: str, check=None, *,
                 text_field: str = "text", template: Template | None = None,
                 indexed: Indexed | None = None) -> list:
    """The value of ``field`` in many records, in the order given (``field`` None: the whole record, a dict).

    Each file is opened once and read in offset order: a compressed stream can
    only be read forward, so one pass per file is the most it should cost.
    ``check(value)`` names what a valid value is; records failing it are errors.
    With ``indexed``, every record found must be the one indexed: its id (where
    it has one) and the hash of its text (its ``text_field``, or ``template``
    rendered) must match, or the file has changed and nothing is returned.
    """
    values: list = [None] * len(offset)
    fields = None if field is None else (field, *text_columns(text_field, template))
    for i, obj, where in _fetched(paths, file_index, offset, fields, text_field, template, indexed):
        value = obj if field is None or obj is None else obj.get(field)
        wanted = check(value) if check else None
        if wanted:
            raise InputError(f"{where}: no record with a {field!r} {wanted} here; "
                             "has the file changed since it was indexed?")
        values[i] = value
    return values


def _fetched(paths: Sequence[Location], file_index: np.ndarray, offset: np.ndarray, fields: tuple[str, ...] | None,
             text_field: str, template: Template | None, indexed: Indexed | None) -> Iterator[tuple[int, dict | None, str]]:
    """``(i, record, where)`` for the records at ``file_index[i]``, ``offset[i]``, one pass per file; with
    ``indexed``, each checked to be the one indexed."""
    file_index = np.asarray(file_index)
    offset = np.asarray(offset)
    if not len(offset):
        return
    if fields is not None and indexed is not None:
        fields = (*fields, indexed.id_field)
    fields = None if fields is None else tuple(dict.fromkeys(fields))
    order = np.lexsort((offset, file_index))
    limit = indexed.max_record_size if indexed else MAX_RECORD_SIZE
    for group in np.split(order, np.flatnonzero(np.diff(file_index[order])) + 1):
        path = storage.location(paths[int(file_index[group[0]])])
        kind = _suffix(path)
        label, unit = _display(path), "row" if kind in _ROWS else "offset" if kind == ".txt" else "byte"
        at = offset[group].tolist()
        for i, o, obj in zip(group.tolist(), at, _fetch(path, at, fields, text_field, limit)):
            where = f"{label}, {unit} {o}"
            if indexed is not None:
                _verify(obj, indexed, i, text_field, template, where)
            yield i, obj, where


def _text_of(obj: dict | None, text_field: str, template: Template | None) -> tuple[str | None, str | None]:
    """A fetched record's text, or what keeps it from having one."""
    if obj is not None and template is not None:
        try:
            return template.render(obj), None
        except InputError as err:
            return None, str(err)
    text = obj.get(text_field) if obj is not None else None
    return (text, None) if isinstance(text, str) else (None, f"no record with a {text_field!r} text is here")


def _verify(obj: dict | None, indexed: Indexed, i: int, text_field: str, template: Template | None,
            where: str) -> None:
    """Refuse a record that is not the one indexed as ``indexed.ids[i]``."""
    doc_id = indexed.ids[i]
    text, problem = _text_of(obj, text_field, template)
    found = obj.get(indexed.id_field) if obj is not None else None
    if problem is None and found is not None and str(found) != doc_id:
        problem = f"the record here now is {str(found)!r}"
    elif problem is None and indexed.hashes is not None and text_hashes([text])[0] != indexed.hashes[i]:
        problem = "its text is not the one indexed"
    if problem is None:
        return
    raise InputError(f"{where}: document {doc_id!r} was indexed here, but {problem}: the file has changed since "
                     "it was indexed; build the index again (or restore the file)")


def _fetch(path: Location, offsets: list[int], fields: tuple[str, ...] | None, text_field: str,
           limit: int) -> list[dict | None]:
    """The records at the ascending ``offsets`` of one file, as their wanted ``fields`` (None: all); None where none is.

    No record is read past ``limit`` bytes, the most the build read of one.
    """
    kind = _suffix(path)
    label = _display(path)
    try:
        if kind == ".parquet":
            return _parquet_records(path, offsets, fields, label)
        if kind == ".arrow":
            return _arrow_records(path, offsets, fields, label)
        if kind == ".txt":
            with storage.open_input(path) as f:
                data = f.read(limit + 1)
            if len(data) > limit:
                raise InputError(f"{label}: over {limit:,} bytes, the most a record of this index may be "
                                 "(--max-record-size): has the file changed since it was indexed?")
            return [{text_field: data.decode("utf-8")} if o == 0 else None for o in offsets]
        return [_json_object(line) for line in _lines_at(path, offsets, limit, label)]
    except (*_UNREADABLE, UnicodeDecodeError) as err:
        raise InputError(f"{label}: {_cannot_read(err)}") from err


def _lines_at(path: Location, offsets: list[int], limit: int, label: str) -> list[bytes]:
    """The lines that start at the ascending ``offsets``, in one forward pass, each of ``limit`` bytes at most."""
    lines = []
    with _open_binary(path) as stream:
        position, previous, line = 0, None, b""
        for offset in offsets:
            if offset != previous:
                _skip_to(stream, offset, position)
                line = stream.readline(limit + 1)
                if len(line) > limit and not line.endswith(b"\n"):
                    raise InputError(f"{label}, byte {offset}: the line here is over {limit:,} bytes, the most a "
                                     "record of this index may be (--max-record-size): has the file changed since "
                                     "it was indexed?")
                position, previous = offset + len(line), offset
            lines.append(line)
    return lines


def _skip_to(stream: IO[bytes], offset: int, position: int = 0) -> None:
    """Move a stream at ``position`` on to ``offset``: a seek where it can, else reading and discarding."""
    if offset == position:
        return
    if stream.seekable():
        stream.seek(offset)
    else:
        _discard(stream, offset - position)


def _skip_line(stream: IO[bytes]) -> int:
    """Read past the rest of a line, a chunk at a time; return how many bytes it held."""
    count = 0
    while chunk := stream.readline(_READ_CHUNK):
        count += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return count


def _discard(stream: IO[bytes], count: int) -> None:
    while count > 0:
        chunk = stream.read(min(count, _READ_CHUNK))
        if not chunk:
            return
        count -= len(chunk)


def _json_object(line: bytes) -> dict | None:
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


@contextlib.contextmanager
def _parquet(path: Location) -> Iterator[pq.ParquetFile]:
    """A Parquet file, read by pyarrow itself when local and through a streaming fsspec file when remote."""
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(storage.open_input(path)) if storage.is_url(path) else path
        yield stack.enter_context(pq.ParquetFile(source))


@contextlib.contextmanager
def _arrow(path: Location) -> Iterator[tuple[pa.Schema, Iterator[pa.RecordBatch]]]:
    """An Arrow IPC stream (what `datasets` writes) or file, as its schema and its batches, read as they are needed.

    A local file is memory-mapped: a batch costs what its used columns hold.
    """
    with (storage.open_input(path) if storage.is_url(path) else pa.memory_map(str(path))) as source:
        random_access = source.read(6) == b"ARROW1"     # the file format's magic; a stream starts otherwise
        source.seek(0)
        if random_access:
            reader = pa.ipc.open_file(source)
            yield reader.schema, (reader.get_batch(i) for i in range(reader.num_record_batches))
        else:
            reader = pa.ipc.open_stream(source)
            yield reader.schema, iter(reader)


@contextlib.contextmanager
def _row_batches(path: Location, columns: Callable[[list[str]], list[str] | None], start: int = 0
                 ) -> Iterator[tuple[list[str], int, Iterator[pa.RecordBatch]]]:
    """A Parquet or Arrow file's column names, the row its batches begin at, and its batches of the
    ``columns(names)`` (None: all), from a batch at or before row ``start``.

    Parquet row groups wholly before ``start`` are not read; Arrow batches
    before it are passed over as they come (memory-mapped, they cost nothing).
    """
    if _suffix(path) == ".parquet":
        with _parquet(path) as file:
            names = file.schema_arrow.names
            groups, first = list(range(file.num_row_groups)), 0
            while groups and first + file.metadata.row_group(groups[0]).num_rows <= start:
                first += file.metadata.row_group(groups.pop(0)).num_rows
            batches = file.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=columns(names), row_groups=groups) \
                if groups else iter(())
            yield names, first, batches
    else:
        with _arrow(path) as (schema, batches):
            chosen = columns(schema.names)
            yield schema.names, 0, (b if chosen is None else b.select(chosen) for b in batches)


def _present(fields: Sequence[str] | None) -> Callable[[list[str]], list[str] | None]:
    """The columns of ``fields`` that a file has (None: all of them)."""
    return lambda names: None if fields is None else [f for f in fields if f in names]


def _no_row(label: str, row: int, rows: int) -> InputError:
    return InputError(f"{label}, row {row}: no such row (the file has {rows}); has the file changed since it was indexed?")


def _parquet_records(path: Location, rows: list[int], fields: tuple[str, ...] | None, label: str) -> list[dict]:
    """The ``fields`` (those the file has) at the ascending ``rows``, reading only the row groups that hold them."""
    with _parquet(path) as file:
        columns = _present(fields)(file.schema_arrow.names)
        sizes = [file.metadata.row_group(g).num_rows for g in range(file.num_row_groups)]
        starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        for row in rows:
            if not 0 <= row < starts[-1]:
                raise _no_row(label, row, starts[-1])
        wanted = np.asarray(rows, dtype=np.int64)
        group_of = np.searchsorted(starts, wanted, side="right") - 1
        records = []
        for group in np.unique(group_of):
            table = file.read_row_group(int(group), columns=columns)
            records += table.take(wanted[group_of == group] - starts[group]).to_pylist()
    return records


def _arrow_records(path: Location, rows: list[int], fields: tuple[str, ...] | None, label: str) -> list[dict]:
    """The ``fields`` (those the file has) at the ascending ``rows``, converting only the batches that hold them."""
    wanted = np.asarray(rows, dtype=np.int64)
    if len(wanted) and wanted[0] < 0:
        raise _no_row(label, int(wanted[0]), 0)
    records: list[dict] = []
    start = 0
    with _row_batches(path, _present(fields)) as (_, _, batches):
        for batch in batches:
            end = start + batch.num_rows
            here = wanted[len(records):]
            here = here[here < end]
            if len(here):
                records += batch.take(pa.array(here - start)).to_pylist()
            start = end
            if len(records) == len(wanted):
                return records
    raise _no_row(label, int(wanted[len(records)]), start)


@contextlib.contextmanager
def _open_binary(path: Location) -> Iterator[IO[bytes]]:
    """``path`` as a stream of its decompressed bytes, which is what offsets count."""
    with storage.open_input(path) as stored, _decompressed(stored, path) as stream:
        yield stream


def _decompressed(stored: IO[bytes], path: Location) -> IO[bytes]:
    """The decompressed bytes of the file ``stored`` (compressed as the name of ``path`` says); the caller
    closes ``stored``, whose position is then how far into the file as stored reading has got."""
    name = storage.name(path).lower()
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=stored, mode="rb")
    if name.endswith(".zst"):
        return io.BufferedReader(_ZstdReader(stored), buffer_size=_READ_CHUNK)
    return stored


class _ZstdReader(io.RawIOBase):
    """A zstd file's decompressed bytes, raising if the file ends inside a frame.

    zstandard's own ``stream_reader`` ends quietly at a truncated frame, which
    would lose the end of an interrupted download without a word. Frames are
    decoded one after another, so files from parallel compressors read whole.
    The input is fed ``_ZSTD_SLICE`` bytes at a time (zstandard's ``decompressobj``
    takes no output limit): a bomb of a file costs a few MiB a step, not its
    decompressed size.
    """

    def __init__(self, file: IO[bytes]):
        self._file = file
        self._chunks = self._decompress()
        self._left = memoryview(b"")

    def _decompress(self) -> Iterator[bytes]:
        decompressor = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
        frame, inside = decompressor.decompressobj(), False
        while chunk := self._file.read(_READ_CHUNK):
            view = memoryview(chunk)
            for start in range(0, len(view), _ZSTD_SLICE):
                data = view[start:start + _ZSTD_SLICE]
                while data:
                    if out := frame.decompress(data):
                        yield out
                    inside = not frame.eof
                    if inside:
                        break
                    data = frame.unused_data
                    frame = decompressor.decompressobj()
        if inside:
            raise zstandard.ZstdError("the file ends inside a frame (truncated?)")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._left:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._left = memoryview(chunk)
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n

    def close(self) -> None:
        self._file.close()
        super().close()
