"""What every reader yields: records, the positions that find them again, and the records left out.

These are the corpus's side of the index: a build stores a record's file and
offset, resumes from a ``Position``, and reports each ``Skipped`` one.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from .. import storage
from ..storage import Location

#: Bytes of one record at most, unless told otherwise: far beyond any document
#: worth training on, and what one record may cost to read.
MAX_RECORD_SIZE = 16 << 20


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


def number(value) -> float:
    """A record field as a number: NaN where it is missing or not a number (booleans are not)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


def text_hashes(texts: Iterable[str]) -> np.ndarray:
    """A 64-bit hash of each text (BLAKE2b of its UTF-8), as the index records it.

    It tells whether the record found at an indexed position is still the one
    that was scored: 8 bytes a document, the same in every process.
    """
    return np.fromiter((int.from_bytes(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest(), "little")
                        for t in texts), np.uint64)


def display(path: Location) -> str:
    """``path`` as the user would write it: relative to the working directory when under it."""
    if storage.is_url(path):
        return path
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def cannot_read(err: BaseException) -> str:
    """The reason given for a file that cannot be read, from what reading it raised."""
    detail = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return f"cannot read the file: {detail}"


def kind(value) -> str:
    """A JSON value's kind, as a message names it ("a number", "null")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(value), type(value).__name__)
