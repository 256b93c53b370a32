"""Reading the records of a list of corpus files, each by the reader its suffix names, from the start or
from where an interrupted read had got."""
from __future__ import annotations

from typing import Iterator, Sequence

from .. import storage
from ..storage import Location
from ..template import Template
from .base import Source
from .records import MAX_RECORD_SIZE, Position, Record, Skipped, display
from .registry import reader_class
from .streams import UNREADABLE


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

    Args:
        files: the corpus files, as :func:`~nagindex.corpus.find_files` lists them.
        text_field: the field holding a record's text.
        id_field: the field holding a record's id; default ids are made from paths relative to ``root``,
            so that they do not change when the corpus is moved.
        extra_fields: fields kept with each record (``Record.fields``).
        on_error: ``"raise"`` stops at the first bad record, so nothing is lost unnoticed; ``"skip"``
            lets a long build get past a few and accounts for each of them in ``skipped``.
        skipped: where skipped records are accounted for.
        seen_ids: maps every id to where it was first seen: pass one dict to several calls to keep ids
            unique across them; reading from ``start``, it must hold the ids read before it.
        root: the directory default ids are relative to (None: the file's name).
        max_record_size: bytes of one record (a line, a text file, a Parquet text) at most; a larger one
            is a bad record, and no more than that is read of it.
        template: makes a record's text from its fields instead of its ``text_field``.
        start: where to start; reading from a record's ``after`` yields what the whole read yields after
            that record, ids and positions the same.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    settings = dict(extra_fields=tuple(extra_fields), on_error=on_error,
                    skipped=skipped if skipped is not None else [], seen_ids=seen_ids if seen_ids is not None else {},
                    max_record_size=max_record_size, template=template)
    start = start or Position()
    for index, path in enumerate(files):
        if index < start.file:
            continue
        path = storage.location(path)
        name = storage.relative(path, root) if root is not None else storage.name(path)
        reader = reader_class(path)(text_field, id_field, **settings)
        with storage.reaching(display(path)):
            yield from reader.read(Source(path, index, name, display(path)),
                                   start if index == start.file else Position(index))


def known_documents(path: Location) -> int | None:
    """How many records ``path`` holds, where that costs no reading of its contents (a Parquet footer, a
    local Arrow file's batch headers, one for a text file); None where it must be read through to be counted."""
    try:
        return reader_class(path)().count(path)
    except UNREADABLE:
        return None              # the build names the damage when it reads the file
