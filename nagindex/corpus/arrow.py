"""Arrow IPC streams (what `datasets` save_to_disk writes) and files: rows read and fetched back a batch
at a time, a local file memory-mapped so that a batch costs what its used columns hold."""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import pyarrow as pa

from .. import storage
from ..storage import Location
from .rows import Columns, RowReader, no_row, present


class ArrowReader(RowReader):
    """A record is a row; batches before a resumed row are passed over as they come."""

    @contextlib.contextmanager
    def batches(self, path: Location, columns: Columns, start: int = 0
                ) -> Iterator[tuple[list[str], int, Iterator[pa.RecordBatch]]]:
        with _arrow(path) as (schema, batches):
            chosen = columns(schema.names)
            yield schema.names, 0, (b if chosen is None else b.select(chosen) for b in batches)

    def fetch(self, path: Location, offsets: list[int], fields: tuple[str, ...] | None, label: str) -> list[dict]:
        """The rows at ``offsets``, converting only the batches that hold them."""
        wanted = np.asarray(offsets, dtype=np.int64)
        if len(wanted) and wanted[0] < 0:
            raise no_row(label, int(wanted[0]), 0)
        records: list[dict] = []
        start = 0
        with self.batches(path, present(fields)) as (_, _, batches):
            for batch in batches:
                end = start + batch.num_rows
                here = wanted[len(records):]
                here = here[here < end]
                if len(here):
                    records += batch.take(pa.array(here - start)).to_pylist()
                start = end
                if len(records) == len(wanted):
                    return records
        raise no_row(label, int(wanted[len(records)]), start)

    def count(self, path: Location) -> int | None:
        """The rows its batch headers record, for a local file (memory-mapped: its batches are not read);
        None for a remote one, which must be read through to be counted."""
        if storage.is_url(path):
            return None
        with _arrow(path) as (_, batches):
            return sum(b.num_rows for b in batches)


@contextlib.contextmanager
def _arrow(path: Location) -> Iterator[tuple[pa.Schema, Iterator[pa.RecordBatch]]]:
    """An Arrow IPC stream or file, as its schema and its batches, read as they are needed."""
    with (storage.open_input(path) if storage.is_url(path) else pa.memory_map(str(path))) as source:
        random_access = source.read(6) == b"ARROW1"     # the file format's magic; a stream starts otherwise
        source.seek(0)
        if random_access:
            reader = pa.ipc.open_file(source)
            yield reader.schema, (reader.get_batch(i) for i in range(reader.num_record_batches))
        else:
            reader = pa.ipc.open_stream(source)
            yield reader.schema, iter(reader)
