"""Indexes on remote storage, read through fsspec, against a real S3 server on localhost."""
from __future__ import annotations

import shutil

import fsspec

from helpers import build, query, rows, run


def test_query_an_index_on_s3_through_a_local_copy_fetched_again_when_it_changes(tiny_model, demo_corpus, demo_index,
                                                                                 s3_server, tmp_path):
    bucket = s3_server(demo_index)
    targets = demo_corpus / "targets.jsonl"
    local = rows(query(demo_index, targets, "-k", "10", "--with-text").output)
    assert rows(query(bucket, targets, "-k", "10", "--with-text").output) == local
    assert "documents" in run("info", bucket).output

    # The same bucket now holds an index of another corpus (fewer documents): the next query sees it.
    smaller = tmp_path / "corpus"
    shutil.copytree(demo_corpus / "corpus", smaller, ignore=shutil.ignore_patterns("notes", "*.parquet", "*.gz"))
    build(tiny_model, smaller, tmp_path / "small.index")
    fs = fsspec.filesystem("s3")
    fs.rm(bucket.removeprefix("s3://"), recursive=True)
    s3_server(tmp_path / "small.index", bucket.removeprefix("s3://"))
    expected = rows(query(tmp_path / "small.index", targets, "-k", "1000", "--dedup").output)
    assert rows(query(bucket, targets, "-k", "1000", "--dedup").output) == expected != local
