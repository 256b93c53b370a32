"""Reading documents from JSON lines, Parquet, Arrow (`datasets` folders) and plain-text files, local or remote.

One reader serves the corpus at build time, the target examples at query time
and the texts shown with results, so that a document's id, text and position
agree whichever way it is reached. The index stores only positions; the text
is fetched back from the source file when it is needed.

Each format is a reader of its own over :class:`~nagindex.corpus.base.Reader`,
named by suffix in :mod:`~nagindex.corpus.registry`. A corpus on remote storage
(an fsspec URL) is listed and read through :mod:`nagindex.storage`, streaming,
with the same checks as a local one. Every problem is reported with the file
and the line or row at fault: in a corpus of millions of records, "not valid
JSON" alone is no help.
"""
from .base import Reader, Source, text_columns
from .discovery import find_files
from .fetch import Indexed, fetch_text, fetch_texts, fetch_values
from .read import known_documents, read_records
from .records import MAX_RECORD_SIZE, Position, Record, Skipped, number, text_hashes
from .registry import READERS, SUFFIXES, data_stem, reader_class, suffix
from .sources import check_source, reroot
from .splits import choose_split

__all__ = [
    "MAX_RECORD_SIZE", "READERS", "SUFFIXES", "Indexed", "Position", "Reader", "Record", "Skipped", "Source",
    "check_source", "choose_split", "data_stem", "fetch_text", "fetch_texts", "fetch_values", "find_files",
    "known_documents", "number", "read_records", "reader_class", "reroot", "suffix", "text_columns", "text_hashes",
]
