"""The base of every corpus format's reader: what it yields, how it resumes, how it is fetched back from.

A format's reader turns a file into field dicts and hands each to
:meth:`Reader.record`, which makes the one ``Record`` every format yields
(the text, the id, the checks on both) and accounts for the bad ones, so
that all formats name and skip problems alike. A format says three things
of its own: how to read a file from a ``Position`` (:meth:`Reader.read`),
how to find the records at given offsets again (:meth:`Reader.fetch`), and,
where that costs no reading, how many records a file holds (:meth:`Reader.count`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

from ..errors import InputError
from ..storage import Location, connection_failed
from ..template import Template
from .records import MAX_RECORD_SIZE, Position, Record, Skipped, cannot_read, kind


@dataclass(frozen=True)
class Source:
    """One corpus file as a reader meets it."""

    path: Location
    index: int     # its place in the list of files read: the ``file_index`` of its records
    name: str      # what its default ids are made of: its path relative to the corpus root
    label: str     # how messages name it


def text_columns(text_field: str, template: Template | None) -> tuple[str, ...]:
    """The fields a record's text is made of: its ``text_field``, or those ``template`` reads."""
    return tuple(sorted(template.fields)) if template is not None else (text_field,)


class Reader:
    """The settings of one read and what it has seen so far; subclassed once per format.

    Args:
        text_field: the field holding a record's text (unless ``template`` makes it).
        id_field: the field holding a record's id; a record without one is named by its place.
        extra_fields: fields kept with each record (``Record.fields``).
        on_error: ``"raise"`` at the first bad record, or ``"skip"`` it into ``skipped``.
        skipped: where skipped records are accounted for, shared by the readers of one read.
        seen_ids: every id seen so far and where, shared by the readers of one read.
        max_record_size: bytes of one record at most; no more than that is read of it.
        template: makes a record's text from its fields instead of ``text_field``.
    """

    #: What this format's offsets count, as messages name them ("byte 1024", "row 7").
    unit = "byte"

    def __init__(self, text_field: str = "text", id_field: str = "id", *, extra_fields: Sequence[str] = (),
                 on_error: str = "raise", skipped: list[Skipped] | None = None,
                 seen_ids: dict[str, str] | None = None, max_record_size: int = MAX_RECORD_SIZE,
                 template: Template | None = None):
        self.text_field = text_field
        self.id_field = id_field
        self.extra_fields = tuple(extra_fields)
        self.on_error = on_error
        self.skipped = skipped if skipped is not None else []
        self.seen_ids = seen_ids if seen_ids is not None else {}
        self.max_record_size = max_record_size
        self.template = template

    def read(self, source: Source, at: Position) -> Iterator[Record]:
        """The usable records of ``source``, from ``at``: its start, or a ``Record.after`` in it.

        Reading from a record's ``after`` must yield what reading the whole
        file yields after that record, ids and offsets the same.
        """
        raise NotImplementedError

    def fetch(self, path: Location, offsets: list[int], fields: tuple[str, ...] | None, label: str
              ) -> list[dict | None]:
        """The records at the ascending ``offsets`` of ``path`` (``Record.offset``), as dicts of their
        ``fields`` (None: all), None where no record is; no record read past ``max_record_size`` bytes."""
        raise NotImplementedError

    def count(self, path: Location) -> int | None:
        """How many records ``path`` holds, where that costs no reading of its contents; else None."""
        return None

    def record(self, obj: dict, default_id: str, source: Source, offset: int, where: str,
               after: Position, position: int = 0) -> Record | None:
        """The record made of the fields ``obj`` found at ``where``, or None where it is a skipped bad one."""
        if self.template is not None:
            try:
                text = self.template.render(obj)
            except InputError as err:
                return self.bad(where, str(err))
            what = "the template's text"
        elif self.text_field not in obj:
            fields = ", ".join(map(repr, obj)) or "none"
            return self.bad(where, f"no {self.text_field!r} field (fields: {fields})")
        else:
            text, what = obj[self.text_field], repr(self.text_field)
            if not isinstance(text, str):
                return self.bad(where, f"{what} is {kind(text)}, not a string")
        if not text.strip():
            return self.bad(where, f"{what} is empty or only whitespace")
        if len(text) > self.max_record_size:
            return self.bad(where, self.too_large(len(text.encode("utf-8"))))

        doc_id = obj.get(self.id_field, default_id)
        if isinstance(doc_id, int) and not isinstance(doc_id, bool):
            doc_id = str(doc_id)
        if not isinstance(doc_id, str):
            return self.bad(where, f"{self.id_field!r} is {kind(doc_id)}; ids are strings or integers")
        if not doc_id:
            return self.bad(where, f"{self.id_field!r} is empty")

        problem = _surrogate(text, what) or _surrogate(doc_id, repr(self.id_field))
        if problem:
            return self.bad(where, problem)
        first = self.seen_ids.get(doc_id)
        if first is not None:
            return self.bad(where, f"duplicate id {doc_id!r}, first seen at {first}")
        self.seen_ids[doc_id] = where

        fields = {k: obj[k] for k in self.extra_fields if k in obj}
        return Record(doc_id, text, source.index, offset, where, fields, after, position)

    def too_large(self, size: int) -> str:
        """Why a record of ``size`` bytes is refused."""
        return f"the record is {size:,} bytes, over the limit of {self.max_record_size:,} (--max-record-size)"

    def bad(self, where: str, reason: str, rest_of_file: bool = False) -> None:
        """A bad record at ``where``: an error, or with ``on_error="skip"`` an entry of ``skipped``."""
        if self.on_error == "raise":
            raise InputError(f"{where}: {reason}")
        self.skipped.append(Skipped(where, reason, rest_of_file))

    def lost(self, where: str, err: BaseException, read_until: str | None = None) -> None:
        """A file that cannot be read on from ``where``: what was read stays, the rest is missing."""
        if connection_failed(err):
            raise err           # not the file's fault: storage.reaching names it, and nothing is skipped
        if read_until is None:
            self.bad(where, cannot_read(err), rest_of_file=True)
        else:
            self.bad(where, f"{cannot_read(err)}; the readable part ends {read_until}: "
                            "the rest of the file is missing", rest_of_file=True)


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
