"""A corpus format of tab-separated lines, ``id<TAB>text``: all that adding a format takes (and one registry line)."""
from __future__ import annotations

from nagindex.corpus.lines import LineReader, NotARecord


class TsvReader(LineReader):
    """A record is a line of two tab-separated fields, its id and its text."""

    def parse(self, line: str) -> dict:
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 2:
            raise NotARecord(f"expected 2 tab-separated fields (id, text), found {len(fields)}")
        return dict(zip((self.id_field, self.text_field), fields))
