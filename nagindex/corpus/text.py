"""Plain-text files: the whole file is one document, at offset 0, named by its path."""
from __future__ import annotations

from typing import Iterator

from .. import storage
from ..errors import InputError
from ..storage import Location
from .base import Reader, Source
from .records import Position, Record


class TextReader(Reader):
    """A record is the file's UTF-8 text, as its ``text_field``."""

    unit = "offset"

    def read(self, source: Source, at: Position) -> Iterator[Record]:
        try:
            size = storage.info(source.path)["size"]
            if size > self.max_record_size:
                self.bad(source.label, self.too_large(size))
                return
            with storage.open_input(source.path) as f:
                data = f.read(self.max_record_size + 1)
        except OSError as err:
            self.lost(source.label, err)
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            line_no = data.count(b"\n", 0, err.start) + 1
            self.bad(f"{source.label}, line {line_no}", f"invalid UTF-8 at byte {err.start} of the file")
            return
        record = self.record({self.text_field: text}, source.name, source, 0, source.label,
                             Position(source.index + 1))
        if record:
            yield record

    def fetch(self, path: Location, offsets: list[int], fields: tuple[str, ...] | None, label: str
              ) -> list[dict | None]:
        limit = self.max_record_size
        with storage.open_input(path) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise InputError(f"{label}: over {limit:,} bytes, the most a record of this index may be "
                             "(--max-record-size): has the file changed since it was indexed?")
        return [{self.text_field: data.decode("utf-8")} if o == 0 else None for o in offsets]

    def count(self, path: Location) -> int:
        return 1
