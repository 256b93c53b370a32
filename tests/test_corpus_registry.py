"""A corpus format added by one reader and one registry line is built, queried and fetched back like the others."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from helpers import build, query, rows
from nagindex.corpus import READERS, fetch_texts, find_files, read_records
from nagindex.index import Index
from tsv_format import TsvReader


@pytest.fixture
def tsv_corpus(demo, tmp_path):
    """The demo corpus's JSON lines rewritten as TSV, its other files left as they are; and its texts by id."""
    texts = {}
    for path in sorted((demo / "corpus").glob("*.jsonl")):
        records = [json.loads(line) for line in path.read_text().splitlines()]
        mine = {r["id"]: " ".join(r["text"].split()) for r in records}    # no tab nor newline in a TSV text
        path.with_suffix(".tsv").write_text("".join(f"{i}\t{t}\n" for i, t in mine.items()))
        path.unlink()
        texts.update(mine)
    return demo / "corpus", texts


def test_a_registered_format_is_indexed_queried_and_fetched_back(tiny_model, demo, tsv_corpus, tmp_path,
                                                                  monkeypatch):
    corpus, texts = tsv_corpus
    assert "unsupported file type" in build(tiny_model, corpus / "web-00.tsv", tmp_path / "none", ok=False).output

    monkeypatch.setitem(READERS, ".tsv", TsvReader)
    index = tmp_path / "i"
    build(tiny_model, corpus, index)
    idx = Index(index)
    assert set(texts) <= set(idx.ids) and idx.manifest["documents"] > len(texts)   # beside the other formats
    files = {f["path"].rsplit("/", 1)[-1] for f in idx.shards[0].meta["files"]}
    assert {"web-00.tsv", "web-02.parquet"} <= files
    idx.close()

    found = rows(query(index, demo / "targets.jsonl", "-k", "60", "--with-text").output)
    from_tsv = [r for r in found if r["id"] in texts]
    assert from_tsv and all(r["text"] == texts[r["id"]] for r in from_tsv)


def test_a_bad_record_of_a_registered_format_is_named_by_file_and_line(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(READERS, ".tsv", TsvReader)
    corpus = tmp_path / "c.tsv"
    corpus.write_text("a0\tcell energy\na1\tflour water\na2 no tab here\n")
    result = build(tiny_model, corpus, tmp_path / "i", ok=False)
    assert "c.tsv, line 3: expected 2 tab-separated fields (id, text), found 1" in result.output


def test_a_registered_line_format_resumes_and_decompresses_as_json_lines_do(tmp_path, monkeypatch):
    monkeypatch.setitem(READERS, ".tsv.gz", TsvReader)
    path = tmp_path / "c.tsv.gz"
    with gzip.open(path, "wt") as f:
        f.write("a0\tcell energy\n\na1\tflour water\na2\tsalt\n")
    records = list(read_records(find_files(tmp_path)))
    assert [(r.id, r.text) for r in records] == [("a0", "cell energy"), ("a1", "flour water"), ("a2", "salt")]
    assert [r.where.rsplit("/", 1)[-1] for r in records] == ["c.tsv.gz, line 1", "c.tsv.gz, line 3", "c.tsv.gz, line 4"]
    rest = list(read_records([path], start=records[0].after, seen_ids={"a0": records[0].where}))
    assert rest == records[1:]
    assert fetch_texts([path], np.zeros(2, np.int64), np.array([records[2].offset, records[1].offset])) == [
        "salt", "flour water"]
