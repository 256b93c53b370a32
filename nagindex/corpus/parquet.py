"""Parquet files: rows read a batch at a time, entered at the row group holding a resumed row, and
fetched back by row group."""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import storage
from ..storage import Location
from .rows import Columns, RowReader, no_row, present


class ParquetReader(RowReader):
    """A record is a row; row groups wholly before a resumed row are not read."""

    #: Rows decoded at a time: what reading a file holds at once, however large its row groups.
    batch_rows = 1024

    @contextlib.contextmanager
    def batches(self, path: Location, columns: Columns, start: int = 0
                ) -> Iterator[tuple[list[str], int, Iterator[pa.RecordBatch]]]:
        with _parquet(path) as file:
            names = file.schema_arrow.names
            groups, first = list(range(file.num_row_groups)), 0
            while groups and first + file.metadata.row_group(groups[0]).num_rows <= start:
                first += file.metadata.row_group(groups.pop(0)).num_rows
            batches = file.iter_batches(batch_size=self.batch_rows, columns=columns(names), row_groups=groups) \
                if groups else iter(())
            yield names, first, batches

    def fetch(self, path: Location, offsets: list[int], fields: tuple[str, ...] | None, label: str) -> list[dict]:
        """The rows at ``offsets``, reading only the row groups that hold them."""
        with _parquet(path) as file:
            columns = present(fields)(file.schema_arrow.names)
            sizes = [file.metadata.row_group(g).num_rows for g in range(file.num_row_groups)]
            starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
            for row in offsets:
                if not 0 <= row < starts[-1]:
                    raise no_row(label, row, starts[-1])
            wanted = np.asarray(offsets, dtype=np.int64)
            group_of = np.searchsorted(starts, wanted, side="right") - 1
            records = []
            for group in np.unique(group_of):
                table = file.read_row_group(int(group), columns=columns)
                records += table.take(wanted[group_of == group] - starts[group]).to_pylist()
        return records

    def count(self, path: Location) -> int:
        """The rows its footer records."""
        with _parquet(path) as file:
            return file.metadata.num_rows


@contextlib.contextmanager
def _parquet(path: Location) -> Iterator[pq.ParquetFile]:
    """A Parquet file, read by pyarrow itself when local and through a streaming fsspec file when remote."""
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(storage.open_input(path)) if storage.is_url(path) else path
        yield stack.enter_context(pq.ParquetFile(source))
