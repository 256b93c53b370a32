"""JSON lines (``.jsonl``, and Dolma's ``.json``), plain, gzip or zstd: one JSON object a line."""
from __future__ import annotations

import json
import re

from .lines import LineReader, NotARecord
from .records import kind


class JsonlReader(LineReader):
    """A record is the JSON object on a line; its fields are the object's keys."""

    def parse(self, line: str) -> dict:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise NotARecord(f"not valid JSON ({_clause(err.msg)} at column {err.colno})") from None
        if not isinstance(obj, dict):
            raise NotARecord(f"expected a JSON object, found {kind(obj)}")
        return obj


def _clause(msg: str) -> str:
    """The json module's message as a clause: "Invalid control character at" is "invalid control character"."""
    msg = re.sub(r"\s+at$", "", msg)
    return msg[:1].lower() + msg[1:]
