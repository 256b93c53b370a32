"""Indexes on remote storage, read through fsspec, against a real S3 server on localhost."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

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


def test_a_corpus_on_s3_is_built_and_its_texts_read_back_from_there(tiny_model, demo_corpus, s3_server, tmp_path):
    import datasets

    from nagindex.corpus import find_files, read_records

    corpus = Path(shutil.copytree(demo_corpus / "corpus", tmp_path / "corpus"))
    datasets.Dataset.from_list([{"text": f"cell energy water {'flour ' * i}"} for i in range(5)]
                               ).save_to_disk(str(corpus / "ds"), num_shards=2)
    truth = {r.id: r.text for r in read_records(find_files(corpus), root=corpus)}
    bucket = s3_server(corpus)
    index = tmp_path / "s3.index"
    build(tiny_model, f"{bucket}/", index)
    meta = json.loads((index / "shards" / "00000" / "shard.json").read_text())
    assert all(f["path"].startswith(f"{bucket}/") and f["etag"] for f in meta["files"])
    assert meta["documents"] == len(truth)

    targets = demo_corpus / "targets.jsonl"
    out = rows(query(index, targets, "-k", "1000", "--dedup", "--with-text").output)
    assert {r["id"]: r["text"] for r in out} == truth
    domains = {r.id: r.fields.get("domain") for r in read_records(find_files(corpus), root=corpus,
                                                                  extra_fields=("domain",))}
    out = rows(query(index, targets, "-k", "1000", "--dedup", "--with-fields", "domain",
                     "--quality-field", "quality").output)
    assert {r["id"]: r.get("domain") for r in out} == domains and len(out) == len(truth)

    # A same-length edit of a remote object: the text hash tells; a rewrite of another size: its size does.
    # Edited by another client, as another machine would: nothing cached here learns of it.
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    key = f"{bucket.removeprefix('s3://')}/web-00.jsonl"
    fs.pipe_file(key, fs.cat_file(key).replace(b"the", b"THE", 1))
    result = query(index, targets, "-k", "1000", "--with-text", ok=False)
    assert result.exit_code != 0
    assert re.search(rf"{bucket}/web-00\.jsonl, byte \d+: document '[^']+' was indexed here, but its text is "
                     r"not the one indexed", result.output)
    fs.pipe_file(key, (corpus / "web-00.jsonl").read_bytes())
    key = f"{bucket.removeprefix('s3://')}/ds/data-00001-of-00002.arrow"
    fs.pipe_file(key, fs.cat_file(key) + b"\0" * 8)
    result = query(index, targets, "-k", "1000", "--with-text", ok=False)
    assert re.search(rf"{bucket}/ds/data-00001-of-00002\.arrow: [\d,]+ bytes, [\d,]+ when it was indexed",
                     result.output)
