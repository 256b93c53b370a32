"""Fetching records back by position (their file and offset), for texts shown with results and the values
a query reads, each checked to be the record that was indexed.

The index stores only positions; a file changed since the build would hand
back another record's text under an indexed id, so with what the index
recorded (:class:`Indexed`) a record that is not the one indexed is an error.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from .. import storage
from ..errors import InputError
from ..storage import Location
from ..template import Template
from .base import text_columns
from .records import MAX_RECORD_SIZE, cannot_read, display, text_hashes
from .registry import reader_class
from .streams import UNREADABLE


@dataclass(frozen=True)
class Indexed:
    """What an index recorded of the records it fetches back, to tell them from changed ones."""

    ids: Sequence[str]            # the indexed ids, in the order the records are asked for
    hashes: np.ndarray | None     # their text hashes; None for an index that predates them
    id_field: str = "id"
    max_record_size: int = MAX_RECORD_SIZE   # bytes of a record at most, as the build read them


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


def fetch_values(paths: Sequence[Location], file_index: np.ndarray, offset: np.ndarray, field: str | None,
                 check: Callable | None = None, *, text_field: str = "text", template: Template | None = None,
                 indexed: Indexed | None = None) -> list:
    """The value of ``field`` in many records, in the order given.

    Each file is opened once and read in offset order: a compressed stream can
    only be read forward, so one pass per file is the most it should cost.

    Args:
        paths: the indexed corpus files.
        file_index, offset: each record's file (an index into ``paths``) and offset in it.
        field: the field wanted; None: the whole record, a dict.
        check: ``check(value)`` names what a valid value is (falsy where it is one); a record failing it is an error.
        text_field, template: how the records' texts were made, for ``indexed`` to check them.
        indexed: with it, every record found must be the one indexed: its id (where it has one) and the hash
            of its text must match, or the file has changed and nothing is returned.
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
    limit = indexed.max_record_size if indexed else MAX_RECORD_SIZE
    order = np.lexsort((offset, file_index))
    for group in np.split(order, np.flatnonzero(np.diff(file_index[order])) + 1):
        path = storage.location(paths[int(file_index[group[0]])])
        reader = reader_class(path)(text_field, max_record_size=limit)
        label = display(path)
        at = offset[group].tolist()
        try:
            with storage.reaching(label):
                found = reader.fetch(path, at, fields, label)
        except (*UNREADABLE, UnicodeDecodeError) as err:
            raise InputError(f"{label}: {cannot_read(err)}") from err
        for i, o, obj in zip(group.tolist(), at, found):
            where = f"{label}, {reader.unit} {o}"
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
