"""Writing a selection: JSONL (default, to stdout) or Parquet, never half a file.

A file output is written under a temporary name and renamed at the end, so an
interrupted or failed query leaves either the whole result or nothing.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from nagindex.atomic import atomic_path
from nagindex.errors import NagindexError

FORMATS = ("jsonl", "parquet")


def output_format(path: str | None, fmt: str | None) -> str:
    if fmt:
        return fmt
    if path and Path(path).suffix == ".parquet":
        return "parquet"
    return "jsonl"


def write_selection(table: pa.Table, path: str | None, fmt: str | None = None) -> None:
    fmt = output_format(path, fmt)
    if fmt not in FORMATS:
        raise NagindexError(f"--format {fmt}: choose from {', '.join(FORMATS)}")
    if path is None or path == "-":
        if fmt == "parquet":
            raise NagindexError("Parquet output needs a file: pass -o selected.parquet")
        _write_jsonl(table, sys.stdout)
        sys.stdout.flush()
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            pq.write_table(table, tmp)
        else:
            with open(tmp, "w") as f:
                _write_jsonl(table, f)


def _write_jsonl(table: pa.Table, stream) -> None:
    for batch in table.to_batches(65536):
        for row in batch.to_pylist():
            stream.write(json.dumps(row, ensure_ascii=False) + "\n")
