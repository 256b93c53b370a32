"""``--engine ray``: the same index and the same selections as the local engine."""
from __future__ import annotations

import sys

import h5py
import numpy as np
import pytest

from nagindex.index import Index
from helpers import build, run, snapshot

QUERIES = [("-k", "10"), ("-k", "25", "--dedup"), ("-k", "70", "--dedup"), ("--tokens", "900"),
           ("--tokens", "1500", "--dedup"), ("--fraction", "0.3", "--layers", "last"),
           ("-k", "1000"), ("-k", "10", "--weighting", "classifier")]


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.mark.ray
def test_ray_build_equals_local_build(cluster, tiny_model, demo, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "b0", "text": "cell energy"}\n{broken\n{"id": "b0", "text": "again"}\n')
    local, distributed = tmp_path / "local", tmp_path / "ray"
    reports = [build(tiny_model, demo / "corpus", path, bad, "--skip-bad", "--window", "8", "--keep-field", "quality",
                     *engine).output
               for path, engine in ((local, ()), (distributed, ("--engine", "ray")))]
    a, b = snapshot(local), snapshot(distributed)
    assert a["ids"] == b["ids"] and a["tokens"] == b["tokens"] and "b0" in a["ids"]
    np.testing.assert_array_equal(a["codes"], b["codes"])
    kept = [Index(path).kept_field("quality") for path in (local, distributed)]
    np.testing.assert_array_equal(kept[0], kept[1])
    assert np.isnan(kept[0][a["ids"].index("b0")]) and np.isfinite(kept[0]).sum() > len(kept[0]) // 2
    listed = [(path / "shards" / "00000" / "skipped.jsonl").read_text() for path in (local, distributed)]
    assert listed[0] == listed[1] and len(listed[1].splitlines()) == 2
    assert "skipped 2 bad records" in reports[1] and "line 3: duplicate id 'b0'" in reports[1]


@pytest.mark.ray
def test_ray_query_equals_local_query(cluster, tiny_model, demo, tmp_path):
    index = tmp_path / "i"
    for i in range(3):
        build(tiny_model, demo / "corpus", index, "--shard", f"{i}/3")
    run("merge", index)
    for args in QUERIES:
        local = run("query", demo / "targets.jsonl", "-i", index, *args).stdout
        assert run("query", demo / "targets.jsonl", "-i", index, *args, "--engine", "ray").stdout == local, args


@pytest.mark.ray
def test_a_bad_record_stops_a_ray_build_with_file_and_line(cluster, tiny_model, tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "a0", "text": "cell energy"}\n{"id": "a1", "text": "flour water"}\n{broken\n')
    result = build(tiny_model, corpus, tmp_path / "i", "--engine", "ray", ok=False)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert result.output.startswith("Error: ")
    assert "c.jsonl, line 3: not valid JSON (expecting property name enclosed in double quotes at column 2)" \
        in result.output


def test_ray_engine_without_ray_says_how_to_install_it(tiny_model, demo, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    result = build(tiny_model, demo / "corpus", tmp_path / "i", "--engine", "ray", ok=False)
    assert result.exit_code != 0 and "pip install 'nagindex[ray]'" in result.output


@pytest.mark.ray
def test_a_damaged_code_found_by_a_ray_task_names_its_file_and_document(cluster, tiny_model, demo, tmp_path):
    index = tmp_path / "i"
    build(tiny_model, demo / "corpus", index, "--codes", "ordered")      # a code out of range: only ids are
    codes = next(index.glob("shards/*/codes.h5"))
    with h5py.File(codes, "r+") as f:
        f["codes/fwd_up"][5, 0, 1] = 60_000
        damaged = f["ids"][5].decode()
    result = run("query", demo / "targets.jsonl", "-i", index, "-k", "10", "--engine", "ray", ok=False)
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    assert str(codes.absolute()) in result.output and repr(damaged) in result.output and "Traceback" not in result.output


@pytest.mark.ray
def test_a_ray_build_with_a_template_equals_local_build(cluster, tiny_model, tmp_path):
    from test_build import arc_records, write_records

    from nagindex.corpus import text_hashes
    from nagindex.template import Template

    records = arc_records("a", 5)
    corpus = write_records(tmp_path / "arc.parquet", records)
    local, distributed = tmp_path / "local", tmp_path / "ray"
    for path, engine in ((local, ()), (distributed, ("--engine", "ray"))):
        build(tiny_model, corpus, path, "--template", "arc-challenge", "--window", "2", *engine)
    a, b = snapshot(local), snapshot(distributed)
    assert a["ids"] == b["ids"] and a["tokens"] == b["tokens"]
    np.testing.assert_array_equal(a["codes"], b["codes"])
    rendered = text_hashes(Template("arc-challenge").render(r) for r in records)
    for path in (local, distributed):
        np.testing.assert_array_equal(Index(path).shards[0].store.text_hashes(np.arange(5)), rendered)
    assert Index(distributed).manifest["template"] == Template("arc-challenge").source


@pytest.mark.ray
def test_a_ray_append_computes_in_the_dtype_of_the_index(cluster, tiny_model, demo, tmp_path):
    import torch

    from nagindex.backbone import default_dtype

    # Not this machine's default: an append that ignored the index's dtype would compute in that one.
    other = "float32" if default_dtype(torch.device("cpu")) == torch.bfloat16 else "bfloat16"
    local, distributed = tmp_path / "local", tmp_path / "ray"
    for path, engine in ((local, ()), (distributed, ("--engine", "ray"))):
        build(tiny_model, demo / "corpus" / "web-00.jsonl", path, "--dtype", other)
        build(tiny_model, demo / "corpus" / "web-02.parquet", path, "--append", *engine)
    assert Index(distributed).manifest["dtype"] == other
    a, b = snapshot(local), snapshot(distributed)
    assert a["ids"] == b["ids"]
    np.testing.assert_array_equal(a["codes"], b["codes"])
