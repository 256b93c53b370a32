"""The base of formats with one record a line (JSON lines, and any other): a record's offset is the byte
where its line starts in the decompressed stream, so a plain file resumes by a seek, a compressed one by
decompressing up to it.

A format of lines says only how one line becomes a record's fields (:meth:`LineReader.parse`).
"""
from __future__ import annotations

from typing import Iterator

from .. import storage
from ..errors import InputError
from ..storage import Location
from .base import Reader, Source
from .records import Position, Record
from .streams import UNREADABLE, decompressed, open_binary, skip_line, skip_to


class NotARecord(ValueError):
    """A line that holds no record; its message says why, as a clause ("not valid JSON (...)")."""


class LineReader(Reader):
    """Records one a line, named by their line number; blank lines are passed over."""

    def parse(self, line: str) -> dict:
        """The fields of the record on ``line`` (its text, newline included); :class:`NotARecord` if none."""
        raise NotImplementedError

    def fields(self, line: bytes) -> dict:
        """The fields of the record on the UTF-8 ``line``; :class:`NotARecord` if none."""
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise NotARecord(f"invalid UTF-8 at byte {err.start} of the line") from None
        return self.parse(text)

    def read(self, source: Source, at: Position) -> Iterator[Record]:
        line_no, offset = at.line, at.offset
        try:
            with storage.open_input(source.path) as stored, decompressed(stored, source.path) as stream:
                skip_to(stream, offset)
                while line := stream.readline(self.max_record_size + 1):
                    line_no += 1
                    start, offset = offset, offset + len(line)
                    where = f"{source.label}, line {line_no}"
                    if len(line) > self.max_record_size and not line.endswith(b"\n"):
                        offset += skip_line(stream)
                        self.bad(where, self.too_large(offset - start))
                        continue
                    if line.isspace():
                        continue
                    try:
                        obj = self.fields(line)
                    except NotARecord as err:
                        self.bad(where, str(err))
                        continue
                    record = self.record(obj, f"{source.name}:{line_no}", source, start, where,
                                         Position(source.index, offset, line_no), stored.tell())
                    if record:
                        yield record
        except UNREADABLE as err:
            if line_no:
                self.lost(f"{source.label}, line {line_no + 1}", err,
                          f"after line {line_no} (byte {offset:,} of its decompressed content)")
            else:
                self.lost(source.label, err)

    def fetch(self, path: Location, offsets: list[int], fields: tuple[str, ...] | None, label: str
              ) -> list[dict | None]:
        return [_parsed(self, line) for line in self._lines_at(path, offsets, label)]

    def _lines_at(self, path: Location, offsets: list[int], label: str) -> list[bytes]:
        """The lines that start at the ascending ``offsets``, in one forward pass, each bounded in size."""
        limit = self.max_record_size
        lines = []
        with open_binary(path) as stream:
            position, previous, line = 0, None, b""
            for offset in offsets:
                if offset != previous:
                    skip_to(stream, offset, position)
                    line = stream.readline(limit + 1)
                    if len(line) > limit and not line.endswith(b"\n"):
                        raise InputError(f"{label}, byte {offset}: the line here is over {limit:,} bytes, the most "
                                         "a record of this index may be (--max-record-size): has the file changed "
                                         "since it was indexed?")
                    position, previous = offset + len(line), offset
                lines.append(line)
        return lines


def _parsed(reader: LineReader, line: bytes) -> dict | None:
    """The record on a fetched line, None where there is none (the fetch then names the offset)."""
    try:
        return reader.fields(line)
    except NotARecord:
        return None
