"""The base of columnar formats (Parquet, Arrow): a record is a row, found again by its number, and only
the columns a read needs are decoded.

A columnar format says how to open a file as its column names and its
batches from a row on (:meth:`RowReader.batches`) and how to fetch rows back.
"""
from __future__ import annotations

from typing import Callable, ContextManager, Iterator, Sequence

import pyarrow as pa

from ..errors import InputError
from ..storage import Location
from .base import Reader, Source, text_columns
from .records import Position, Record
from .streams import UNREADABLE

#: The columns to decode, given the names of those a file has (None: all of them).
Columns = Callable[[list[str]], "list[str] | None"]


class RowReader(Reader):
    """Records one a row, read a batch at a time."""

    unit = "row"

    def batches(self, path: Location, columns: Columns, start: int = 0
                ) -> ContextManager[tuple[list[str], int, Iterator[pa.RecordBatch]]]:
        """The file's column names, the row its batches begin at (at or before ``start``), and its
        batches of the ``columns(names)``."""
        raise NotImplementedError

    def read(self, source: Source, at: Position) -> Iterator[Record]:
        row = 0
        try:
            text = text_columns(self.text_field, self.template)
            wanted = (*text, self.id_field, *self.extra_fields)

            def columns(present: list[str]) -> list[str] | None:
                # A template field the file lacks reads every column, for the error to name what records hold.
                return [c for c in dict.fromkeys(wanted) if c in present] if set(text) <= set(present) else None

            with self.batches(source.path, columns, at.offset) as (present, row, batches):
                if self.template is None and self.text_field not in present:
                    self.bad(source.label, f"no {self.text_field!r} column (columns: {', '.join(present)})")
                    return
                for batch in batches:
                    skip = min(max(at.offset - row, 0), len(batch))
                    row += skip
                    for obj in batch.slice(skip).to_pylist():
                        record = self.record(obj, f"{source.name}:{row}", source, row, f"{source.label}, row {row}",
                                             Position(source.index, row + 1))
                        row += 1
                        if record:
                            yield record
        except UNREADABLE as err:
            if row:
                self.lost(f"{source.label}, row {row}", err, f"after row {row - 1}")
            else:
                self.lost(source.label, err)


def present(fields: Sequence[str] | None) -> Columns:
    """The columns of ``fields`` that a file has (None: all of them)."""
    return lambda names: None if fields is None else [f for f in fields if f in names]


def no_row(label: str, row: int, rows: int) -> InputError:
    """The error for a fetched row that is not in the file."""
    return InputError(f"{label}, row {row}: no such row (the file has {rows}); has the file changed since it was indexed?")
