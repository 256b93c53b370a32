"""What the tests share: running the CLI in-process, building with the tiny model, reading an index back."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from nagindex.cli import main
from nagindex.index import Index


def run(*args, ok=True):
    """``nagindex ARGS`` in this process; with ``ok``, it must exit 0."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def build(tiny_model, corpus, index, *extra, ok=True):
    return run("build", corpus, "-o", index, "--model", tiny_model, "--quiet", *extra, ok=ok)


def query(index, targets, *args, ok=True):
    return run("query", targets, "-i", index, *args, ok=ok)


def rows(output: str) -> list[dict]:
    """The JSONL rows of a command's output (stderr lines mixed in are passed over)."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def snapshot(index: Path) -> dict:
    """Everything a query reads of an index: ids, token counts and codes, in index order (each layer's
    codes ascending: a sets index keeps them as sets, in an order that depends on its shards)."""
    idx = Index(index)
    out = {"ids": idx.ids.tolist(), "tokens": idx.tokens.tolist(),
           "codes": np.sort(np.concatenate([c for _, c in idx.iter_codes("fwd_up")]), axis=2)}
    idx.close()
    return out


def as_written_before_id_hashes(index: Path) -> None:
    """Make every shard's store of ``index`` (listed or a part) one written before stores kept their sorted
    id hashes: the datasets removed in place (HDF5 keeps the file's size, which opening checks)."""
    import h5py

    for codes in index.glob("shards/*/codes.h5"):
        size = codes.stat().st_size
        with h5py.File(codes, "r+") as f:
            if "id_hashes" in f:
                del f["id_hashes"], f["id_hash_rows"]
        assert codes.stat().st_size == size
