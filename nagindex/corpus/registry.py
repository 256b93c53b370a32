"""Which reader reads a file, by the suffix of its name: the one place a format is added.

A new format is a :class:`~nagindex.corpus.base.Reader` subclass in a module
of its own and one entry here; listing, reading, resuming and fetching back
then serve it as they serve the others.
"""
from __future__ import annotations

from pathlib import Path

from .. import storage
from ..storage import Location
from .arrow import ArrowReader
from .base import Reader
from .jsonl import JsonlReader
from .parquet import ParquetReader
from .text import TextReader

#: The reader of each corpus file suffix (matched case-insensitively, the longest first).
READERS: dict[str, type[Reader]] = {
    ".jsonl": JsonlReader,
    ".jsonl.gz": JsonlReader,
    ".jsonl.zst": JsonlReader,
    ".json": JsonlReader,
    ".json.gz": JsonlReader,
    ".json.zst": JsonlReader,
    ".parquet": ParquetReader,
    ".arrow": ArrowReader,
    ".txt": TextReader,
}
#: The suffixes of corpus files, as the registry holds them now.
SUFFIXES = READERS.keys()


def suffix(path: Location | str) -> str | None:
    """The corpus suffix that ends the name of ``path``, None where it has none."""
    name = storage.name(path).lower()
    return max((s for s in READERS if name.endswith(s)), key=len, default=None)


def reader_class(path: Location) -> type[Reader]:
    """The reader of the corpus file ``path`` (one that discovery has found, so that it has a suffix)."""
    return READERS[suffix(path)]


def data_stem(path: Location) -> str:
    """A file's name without the data suffix: ``mmlu.stem.jsonl.gz`` is ``mmlu.stem``."""
    found = suffix(path)
    name = storage.name(path)
    return name[: len(name) - len(found)] if found else Path(name).stem
