"""Query output that the next tool reads: files named by their format, shards with a manifest, URLs."""
from __future__ import annotations

import gzip
import io
import json

import pyarrow.parquet as pq
import pytest
import zstandard

from helpers import query, rows
from query.output import MANIFEST


def _lines(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines()]


def test_a_file_is_written_in_the_format_its_name_says(demo_index, demo_corpus, tmp_path):
    targets = demo_corpus / "targets.jsonl"
    expected = rows(query(demo_index, targets, "-k", "8").output)
    query(demo_index, targets, "-k", "8", "-o", tmp_path / "sel.jsonl.gz")
    query(demo_index, targets, "-k", "8", "-o", tmp_path / "sel.jsonl.zst")
    query(demo_index, targets, "-k", "8", "-o", tmp_path / "sel.parquet")
    assert _lines(gzip.decompress((tmp_path / "sel.jsonl.gz").read_bytes())) == expected
    zst = zstandard.ZstdDecompressor().stream_reader(io.BytesIO((tmp_path / "sel.jsonl.zst").read_bytes())).read()
    assert _lines(zst) == expected
    assert pq.read_table(tmp_path / "sel.parquet").to_pylist() == expected


def test_other_names_are_refused_before_the_query(demo_index, demo_corpus, tmp_path):
    targets = demo_corpus / "targets.jsonl"
    result = query(demo_index, targets, "-k", "8", "-o", tmp_path / "sel.csv", ok=False)
    assert result.exit_code != 0 and "sel.csv" in result.output and ".jsonl.gz" in result.output
    result = query(demo_index, targets, "-k", "8", "-o", tmp_path / "sel.jsonl", "--format", "parquet", ok=False)
    assert "says jsonl" in result.output
    assert "one file" in query(demo_index, targets, "-k", "8", "-o", tmp_path / "s.jsonl", "--shard-size", "1MB", ok=False).output
    assert "stdout" in query(demo_index, targets, "-k", "8", "--format", "parquet", ok=False).output
    assert list(tmp_path.iterdir()) == []


def test_a_directory_gets_shards_of_the_size_asked_and_a_manifest(demo_index, demo_corpus, tmp_path):
    out = tmp_path / "selected"
    query(demo_index, demo_corpus / "targets.jsonl", "-k", "60", "--with-text", "-o", f"{out}/", "--shard-size", "4KB",
          "--format", "jsonl")
    manifest = json.loads((out / MANIFEST).read_text())
    shards = sorted(p.name for p in out.glob("part-*.jsonl"))
    assert [s["name"] for s in manifest["shards"]] == shards and len(shards) > 1
    assert all(s["bytes"] == (out / s["name"]).stat().st_size for s in manifest["shards"])
    lines = [(out / name).read_bytes().splitlines(keepends=True) for name in shards]
    longest = max(len(line) for shard in lines for line in shard)
    assert all(4000 <= s["bytes"] <= 4000 + longest for s in manifest["shards"][:-1])
    assert [s["documents"] for s in manifest["shards"]] == [len(shard) for shard in lines]
    assert sum(map(len, lines)) == manifest["documents"] == 60
    assert manifest["backbone"]["sha256"] and manifest["settings"]["top_k"] == 20
    assert {t["target"]: (t["documents"], t["budget"]) for t in manifest["targets"]} == {
        "science_qa": (30, "30 documents"), "word_problems": (30, "30 documents")}
    assert manifest["scoring"]["weighting"] == "auto" and manifest["nagindex"] and manifest["created"]
    assert [c["target"] for c in manifest["weighting_choice"]] == ["science_qa", "word_problems"]
    assert not list(tmp_path.glob(".selected*"))


def test_a_directory_is_replaced_only_if_it_holds_a_selection(demo_index, demo_corpus, tmp_path):
    targets = demo_corpus / "targets.jsonl"
    out = tmp_path / "selected"
    query(demo_index, targets, "-k", "60", "-o", f"{out}/", "--shard-size", "1KB", "--format", "jsonl")
    many = sorted(out.iterdir())
    query(demo_index, targets, "-k", "4", "-o", out, "--format", "jsonl.zst")   # an existing directory, no slash
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "part-00000.jsonl.zst"] and len(many) > 2
    other = tmp_path / "other"
    other.mkdir()
    (other / "mine.txt").write_text("keep")
    assert "other files" in query(demo_index, targets, "-k", "4", "-o", f"{other}/", ok=False).output
    assert [p.name for p in other.iterdir()] == ["mine.txt"]


def test_shuffle_permutes_the_rows_with_its_seed(demo_index, demo_corpus, tmp_path):
    targets = demo_corpus / "targets.jsonl"
    plain = rows(query(demo_index, targets, "-k", "40").output)
    one = rows(query(demo_index, targets, "-k", "40", "--shuffle", "--seed", "1").output)
    again = rows(query(demo_index, targets, "-k", "40", "--shuffle", "--seed", "1").output)
    other = rows(query(demo_index, targets, "-k", "40", "--shuffle", "--seed", "2").output)
    key = lambda r: (r["target"], r["rank"])
    assert one == again != other and one != plain and sorted(one, key=key) == sorted(plain, key=key)


def test_with_fields_carries_corpus_columns_in_row_order(demo_index, demo_corpus, tmp_path):
    targets = demo_corpus / "targets.jsonl"
    out = rows(query(demo_index, targets, "-k", "60", "--with-fields", "domain,quality", "--with-text").output)
    records = {}
    for path in (demo_corpus / "corpus").glob("*.jsonl"):
        records.update({r["id"]: r for r in map(json.loads, path.read_text().splitlines())})
    records.update({r["id"]: r for r in pq.read_table(demo_corpus / "corpus" / "web-02.parquet").to_pylist()})
    for line in gzip.decompress((demo_corpus / "corpus" / "web-01.jsonl.gz").read_bytes()).decode().splitlines():
        r = json.loads(line)
        records[r["id"]] = r
    for r in out:
        if r["id"] in records:
            assert (r["domain"], r["quality"], r["text"]) == tuple(records[r["id"]][k] for k in ("domain", "quality", "text"))
        else:                                   # a .txt note: no fields
            assert r["domain"] is None and r["quality"] is None
    everything = rows(query(demo_index, targets, "-k", "60", "--with-fields", "all").output)
    assert [{k: r[k] for k in ("id", "domain", "quality")} for r in everything] == \
        [{k: r[k] for k in ("id", "domain", "quality")} for r in out]
    assert "text" not in everything[0]
    assert "nothing" in query(demo_index, targets, "-k", "6", "--with-fields", "nothing", ok=False).output


def test_datasets_and_datatrove_read_the_shards(demo_index, demo_corpus, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    readers = pytest.importorskip("datatrove.pipeline.readers")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    targets = demo_corpus / "targets.jsonl"
    parquet, jsonl = tmp_path / "parquet", tmp_path / "jsonl"
    query(demo_index, targets, "-k", "60", "--with-text", "--with-fields", "all", "-o", f"{parquet}/", "--shard-size", "8KB")
    query(demo_index, targets, "-k", "60", "--with-text", "-o", f"{jsonl}/", "--format", "jsonl.gz", "--shard-size", "8KB")
    expected = rows(query(demo_index, targets, "-k", "60", "--with-text").output)
    loaded = datasets.load_dataset("parquet", data_dir=str(parquet), split="train")
    assert loaded["id"] == [r["id"] for r in expected] and loaded["text"] == [r["text"] for r in expected]
    loaded = datasets.load_dataset("json", data_dir=str(jsonl), split="train")
    assert loaded["id"] == [r["id"] for r in expected]
    for reader, folder, pattern in ((readers.ParquetReader, parquet, "*.parquet"), (readers.JsonlReader, jsonl, "*.jsonl.gz")):
        docs = list(reader(str(folder), glob_pattern=pattern)())
        assert [d.id for d in docs] == [r["id"] for r in expected]
        assert [d.text for d in docs] == [r["text"] for r in expected]
        assert [d.metadata["similarity"] for d in docs] == [r["similarity"] for r in expected]


@pytest.fixture
def s3(monkeypatch):
    """A real S3-compatible server on localhost (moto), with one empty bucket."""
    server_mod = pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    import fsspec

    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test",
                       "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir("selections")
    yield fs
    server.stop()


def test_urls_are_written_through_fsspec(demo_index, demo_corpus, tmp_path, s3, monkeypatch):
    monkeypatch.chdir(tmp_path)
    targets = demo_corpus / "targets.jsonl"
    expected = rows(query(demo_index, targets, "-k", "20").output)
    query(demo_index, targets, "-k", "20", "-o", "s3://selections/sel.jsonl.gz")
    s3.invalidate_cache()
    assert _lines(gzip.decompress(s3.cat("selections/sel.jsonl.gz"))) == expected
    query(demo_index, targets, "-k", "20", "-o", "s3://selections/run/", "--shard-size", "1KB", "--format", "jsonl")
    s3.invalidate_cache()
    manifest = json.loads(s3.cat(f"selections/run/{MANIFEST}"))
    assert sum((_lines(s3.cat(f"selections/run/{s['name']}")) for s in manifest["shards"]), []) == expected
    query(demo_index, targets, "-k", "2", "-o", "s3://selections/run/")       # replaces the earlier selection
    s3.invalidate_cache()
    assert sorted(p.rsplit("/", 1)[-1] for p in s3.ls("selections/run")) == [MANIFEST, "part-00000.parquet"]
    assert list(tmp_path.iterdir()) == []                                     # nothing written locally
