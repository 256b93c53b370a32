"""Building from `datasets` folders, JSON lines and hub-style folders of several splits, and reading texts back."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import build, query, rows


def demo_docs(demo_corpus: Path, n: int) -> list[dict]:
    lines = (demo_corpus / "corpus" / "web-00.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines][:n]


def save(path: Path, docs: list[dict], shards: int = 1) -> Path:
    import datasets

    datasets.Dataset.from_list(docs).save_to_disk(str(path), num_shards=shards)
    return path


def test_a_datasets_folder_is_built_and_queried_with_its_texts(tiny_model, demo_corpus, tmp_path):
    docs = demo_docs(demo_corpus, 12)
    folder = save(tmp_path / "ds", docs, shards=2)
    build(tiny_model, folder, tmp_path / "ds.index")
    out = rows(query(tmp_path / "ds.index", demo_corpus / "targets.jsonl", "-k", "100", "--with-text").output)
    texts = {d["id"]: d["text"] for d in docs}
    assert {r["id"] for r in out} == set(texts)
    assert all(r["text"] == texts[r["id"]] for r in out)

    # The same ids in the same rows, one text changed but not its length (nor the file's size): its hash tells.
    edit = docs[3]["text"][:-1] + ("x" if docs[3]["text"][-1] != "x" else "y")
    changed = [dict(d, text=edit) if i == 3 else d for i, d in enumerate(docs)]
    save(tmp_path / "ds2", changed, shards=2)
    for f in (tmp_path / "ds2").iterdir():
        f.replace(folder / f.name)
    result = query(tmp_path / "ds.index", demo_corpus / "targets.jsonl", "-k", "100", "--with-text", ok=False)
    assert result.exit_code != 0
    assert f"row 3: document {docs[3]['id']!r} was indexed here, but its text is not the one indexed" \
        in result.output


def test_dolma_style_json_gz_files_are_json_lines(tiny_model, demo_corpus, tmp_path):
    import gzip

    docs = demo_docs(demo_corpus, 8)
    corpus = tmp_path / "dolma" / "documents"
    corpus.mkdir(parents=True)
    (corpus / "part-0000.json.gz").write_bytes(gzip.compress("".join(json.dumps(d) + "\n" for d in docs).encode()))
    build(tiny_model, corpus, tmp_path / "dolma.index")
    out = rows(query(tmp_path / "dolma.index", demo_corpus / "targets.jsonl", "-k", "100", "--with-text").output)
    assert {(r["id"], r["text"]) for r in out} == {(d["id"], d["text"]) for d in docs}


def test_a_dataset_dict_is_built_one_split_at_a_time(tiny_model, demo_corpus, tmp_path):
    import datasets

    docs = demo_docs(demo_corpus, 10)
    datasets.DatasetDict({"train": datasets.Dataset.from_list(docs[:7]),
                          "test": datasets.Dataset.from_list([{"text": d["text"]} for d in docs[7:]])}
                         ).save_to_disk(str(tmp_path / "dd"))
    index = tmp_path / "dd.index"
    refused = build(tiny_model, tmp_path / "dd", index, ok=False)
    assert refused.exit_code != 0
    assert "the corpus holds several splits (test, train): choose one with --split NAME" in refused.output
    assert "no such split in the corpus (splits found: test, train)" in \
        build(tiny_model, tmp_path / "dd", index, "--split", "dev", ok=False).output

    build(tiny_model, tmp_path / "dd", index, "--split", "train")
    out = rows(query(index, demo_corpus / "targets.jsonl", "-k", "100", "--with-text").output)
    assert {r["id"] for r in out} == {d["id"] for d in docs[:7]}
    assert "up to date" not in build(tiny_model, tmp_path / "dd", index, "--split", "test", "--append").output
    out = rows(query(index, demo_corpus / "targets.jsonl", "-k", "100", "--with-text").output)
    test_rows = [r for r in out if r["id"].startswith("test/")]
    assert {r["id"] for r in test_rows} == {f"test/data-00000-of-00001.arrow:{i}" for i in range(3)}
    assert {r["text"] for r in test_rows} == {d["text"] for d in docs[7:]}
    manifest = json.loads((index / "shards" / "00001" / "shard.json").read_text())
    assert manifest["split"] == "test"


def test_hub_style_parquet_splits(tiny_model, demo_corpus, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = demo_docs(demo_corpus, 9)
    (tmp_path / "hub" / "data").mkdir(parents=True)
    for name, part in (("train-00000-of-00002", docs[:3]), ("train-00001-of-00002", docs[3:6]),
                       ("validation-00000-of-00001", docs[6:])):
        pq.write_table(pa.Table.from_pylist(part), tmp_path / "hub" / "data" / f"{name}.parquet")
    assert "several splits (train, validation)" in build(tiny_model, tmp_path / "hub", tmp_path / "x.index",
                                                         ok=False).output
    build(tiny_model, tmp_path / "hub", tmp_path / "hub.index", "--split", "validation")
    out = rows(query(tmp_path / "hub.index", demo_corpus / "targets.jsonl", "-k", "100", "--with-text").output)
    assert {(r["id"], r["text"]) for r in out} == {(d["id"], d["text"]) for d in docs[6:]}
