"""A corpus that changed after it was indexed: texts fetched back are the ones indexed, or an error says why."""
from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import build, query, rows
from nagindex.errors import InputError
from nagindex.indexdir import CODES
from query import Selector


@pytest.fixture(scope="module")
def indexed(tiny_model, tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """The demo corpus plus a file without ids, built once: ``(corpus, index, texts in index order)``."""
    from nagindex.demo import make_demo

    root = tmp_path_factory.mktemp("stale")
    make_demo(root / "demo", docs=60, seed=0)
    corpus = root / "demo" / "corpus"
    write_parquet(corpus / "rows.parquet", pa.table({"id": [f"r{i}" for i in range(5)],
                                                     "text": [f"cell energy {'water ' * i}flour" for i in range(5)]}))
    (corpus / "plain.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in (
        "cell energy flour water", "water flour energy cell", "energy cell water flour")))
    index = root / "demo.index"
    build(tiny_model, corpus, index)
    sel = Selector(index)
    texts = every_text(sel)
    sel.index.close()
    return corpus, index, texts


def write_parquet(path: Path, table: pa.Table) -> None:
    """Plain, uncompressed and without statistics: the same rows in any order take the same bytes."""
    pq.write_table(table, path, compression="none", use_dictionary=False, write_statistics=False)


@pytest.fixture
def corpus_copy(indexed, tmp_path) -> Path:
    """A copy of the indexed corpus (times kept), to change; read through ``Selector(corpus_root=...)``."""
    corpus, _, _ = indexed
    return Path(shutil.copytree(corpus, tmp_path / "corpus", copy_function=shutil.copy2))


def selector(indexed, copy: Path) -> Selector:
    corpus, index, _ = indexed
    return Selector(index, corpus_root=[(corpus, copy)])


def every_text(sel: Selector) -> list[str]:
    return sel.texts(np.arange(sel.index.documents))


def edit_keeping_time(path: Path, change) -> None:
    """Rewrite ``path`` with ``change(bytes)``, its modification time restored: only the content tells."""
    st = path.stat()
    path.write_bytes(change(path.read_bytes()))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_moved_corpus_is_read_where_it_is_now(indexed, corpus_copy):
    assert every_text(selector(indexed, corpus_copy)) == indexed[2]


def test_a_parquet_file_rewritten_in_another_row_order_is_refused(indexed, corpus_copy):
    path = corpus_copy / "rows.parquet"
    size = path.stat().st_size
    table = pq.read_table(path)
    write_parquet(path, table.take(pa.array(np.arange(table.num_rows)[::-1])))
    assert path.stat().st_size == size
    with pytest.raises(InputError, match=r"rows\.parquet, row 0: document '[^']+' was indexed here, but the record "
                                         r"here now is '[^']+'.*changed since it was indexed"):
        every_text(selector(indexed, corpus_copy))


def test_swapped_lines_are_refused(indexed, corpus_copy):
    path = corpus_copy / "plain.jsonl"
    first, second, third = path.read_bytes().splitlines(keepends=True)
    edit_keeping_time(path, lambda _: second + first + third)
    with pytest.raises(InputError, match=r"plain\.jsonl, byte 0: document 'plain\.jsonl:1' was indexed here, but "
                                         r"its text is not the one indexed"):
        every_text(selector(indexed, corpus_copy))


@pytest.mark.parametrize("name", ["web-00.jsonl", "notes/finance-0003.txt"])
def test_a_same_length_edit_is_refused(indexed, corpus_copy, name):
    edit_keeping_time(corpus_copy / name, lambda data: data.replace(b"the", b"THE", 1))
    with pytest.raises(InputError, match=rf"{name.split('/')[-1]}, (byte|offset) \d+: document '[^']+' was indexed "
                                         r"here, but its text is not the one indexed"):
        every_text(selector(indexed, corpus_copy))


def test_a_recompressed_edit_is_refused(indexed, corpus_copy):
    path = corpus_copy / "web-01.jsonl.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()).replace(b"the", b"one")))
    with pytest.raises(InputError, match=r"web-01\.jsonl\.gz: [\d,]+ bytes, [\d,]+ when it was indexed"):
        every_text(selector(indexed, corpus_copy))


def test_a_quality_field_read_from_a_changed_corpus_is_refused(indexed, corpus_copy):
    path = corpus_copy / "web-00.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    edit_keeping_time(path, lambda _: b"".join([lines[1], lines[0], *lines[2:]]))
    with pytest.raises(InputError, match=r"web-00\.jsonl, byte 0: document '[^']+' was indexed here"):
        selector(indexed, corpus_copy).quality("quality")


def test_a_moved_corpus_without_its_new_root_is_an_error_and_with_it_is_checked(tiny_model, demo, tmp_path):
    index = tmp_path / "i"
    build(tiny_model, demo / "corpus", index)
    targets = demo / "targets.jsonl"
    before = rows(query(index, targets, "-k", "8", "--with-text").output)
    moved = tmp_path / "elsewhere"
    shutil.move(demo / "corpus", moved)
    result = query(index, targets, "-k", "8", "--with-text", ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "No such file or directory; if the corpus has moved" in result.output and "--corpus-root" in result.output
    after = rows(query(index, targets, "-k", "8", "--with-text", "--corpus-root", f"{demo / 'corpus'}={moved}").output)
    assert after == before
    edit_keeping_time(moved / "web-00.jsonl", lambda data: data.replace(b"the", b"THE", 1))
    result = query(index, targets, "-k", "60", "--with-text", "--corpus-root", f"{demo / 'corpus'}={moved}", ok=False)
    assert "web-00.jsonl, byte" in result.output and "its text is not the one indexed" in result.output
    result = query(index, targets, "-k", "1", "--corpus-root", "nowhere", ok=False)
    assert result.exit_code == 1 and "--corpus-root nowhere: write OLD=NEW" in result.output


def test_an_index_without_text_hashes_is_checked_by_size_and_time(indexed, corpus_copy, tmp_path):
    _, index, texts = indexed
    old = Path(shutil.copytree(index, tmp_path / "old.index"))
    for codes in old.glob(f"shards/*/{CODES}"):
        with h5py.File(codes, "r+") as f:
            del f["text_hash"]
    sel = Selector(old, corpus_root=[(indexed[0], corpus_copy)])
    assert every_text(sel) == texts
    assert any("predates text hashes" in note for note in sel.notes)
    os.utime(corpus_copy / "web-00.jsonl")
    with pytest.raises(InputError, match=r"web-00\.jsonl: modified since it was indexed"):
        every_text(sel)
