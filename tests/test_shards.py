"""Sharded builds: independent workers, `nagindex merge`, and the answers of an unsharded index."""
from __future__ import annotations

import itertools
import json
import shutil

import numpy as np
import pytest

from nagindex.extract import Extractor
from nagindex.index import Index
from nagindex.store import CodeStore
from query.budget import Budget
from query.select import pick, reach, summarize

from helpers import as_written_before_id_hashes, build, run, snapshot

QUERIES = [
    ("-k", "10"),
    ("-k", "25", "--dedup"),
    ("--tokens", "900"),
    ("--fraction", "0.2"),
    ("--fraction", "0.4", "--dedup", "--weight", "science_qa=3"),
    ("--fraction", "0.3", "--layers", "last"),      # one layer: coarse scores, many ties, broken by id
    ("-k", "1000"),                                                   # more than the pool
]


def build_shards(tiny_model, corpus, index, n, *extra):
    for i in range(n):
        build(tiny_model, corpus, index, "--shard", f"{i}/{n}", *extra)


def selection(index, targets, *args) -> str:
    # A named weighting: auto's pool sample is drawn by row, and a sharded index orders its rows otherwise.
    result = run("query", targets, "-i", index, "--weighting", "paper", *args)
    assert result.stdout.count("\n") > 0
    return result.stdout


def by_id(index) -> dict:
    s = snapshot(index)
    return {i: (t, c.tobytes()) for i, t, c in zip(s["ids"], s["tokens"], s["codes"])}


def test_sharded_index_answers_exactly_as_one_piece(tiny_model, demo, tmp_path):
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    build(tiny_model, demo / "corpus", whole)
    build_shards(tiny_model, demo / "corpus", sharded, 3)
    assert not (sharded / "manifest.json").exists()
    out = run("merge", sharded).output
    assert "merged 3 shards" in out and "60 documents" in out
    idx = Index(sharded)
    assert [s.name for s in idx.shards] == ["00000-of-00003", "00001-of-00003", "00002-of-00003"]
    assert idx.ids.tolist() != Index(whole).ids.tolist()       # another order of the same documents
    assert by_id(sharded) == by_id(whole)

    science = tmp_path / "science.jsonl"
    science.write_text("".join(line + "\n" for line in (demo / "targets.jsonl").read_text().splitlines()
                               if json.loads(line)["target"] == "science_qa"))
    for targets in (demo / "targets.jsonl", science):
        for args in QUERIES:
            assert selection(sharded, targets, *args) == selection(whole, targets, *args), args
    assert "nothing to merge" in run("merge", sharded).output


def test_a_part_gives_documents_their_unsharded_ids(tiny_model, demo, tmp_path):
    """Part 0 of 4 holds only files under notes/: its ids still name them from the corpus root."""
    whole, part = tmp_path / "whole", tmp_path / "part"
    build(tiny_model, demo / "corpus", whole)
    build(tiny_model, demo / "corpus", part, "--shard", "0/4")
    with CodeStore(part / "shards" / "00000-of-00004" / "codes.h5") as store:
        ids = set(store.ids())
    assert ids and all(i.startswith("notes/") for i in ids) and ids <= set(Index(whole).ids)


def test_a_worker_resumes_its_own_part(tiny_model, demo, tmp_path, monkeypatch):
    clean, index = tmp_path / "clean", tmp_path / "i"
    build_shards(tiny_model, demo / "corpus", clean, 2, "--window", "4")
    run("merge", clean)
    extract = Extractor.run
    calls = itertools.count()

    def crash_after_three_windows(self, plan, *progress):
        if next(calls) == 3:
            raise RuntimeError("killed")
        return extract(self, plan, *progress)

    monkeypatch.setattr(Extractor, "run", crash_after_three_windows)
    assert build(tiny_model, demo / "corpus", index, "--shard", "1/2", "--window", "4", ok=False).exit_code != 0
    monkeypatch.setattr(Extractor, "run", extract)
    assert len(list(index.glob("shards/00001-of-00002.partial/part-*.h5"))) == 3
    build(tiny_model, demo / "corpus", index, "--shard", "0/2", "--window", "4")
    result = run("merge", index, ok=False)
    assert result.exit_code != 0 and "unfinished: 00001-of-00002" in result.output
    assert not (index / "manifest.json").exists()
    assert "(12 resumed)" in build(tiny_model, demo / "corpus", index, "--shard", "1/2", "--window", "4").output
    run("merge", index)
    a, b = snapshot(clean), snapshot(index)
    assert a["ids"] == b["ids"] and a["tokens"] == b["tokens"]
    np.testing.assert_array_equal(a["codes"], b["codes"])


def test_merge_refuses_missing_parts_other_settings_and_mixed_splits(tiny_model, demo, tmp_path):
    index = tmp_path / "i"
    build(tiny_model, demo / "corpus", index, "--shard", "0/3")
    build(tiny_model, demo / "corpus", index, "--shard", "2/3", "--top-k", "10")
    result = run("merge", index, ok=False)
    assert result.exit_code != 0 and "not built: 00001-of-00003" in result.output
    build(tiny_model, demo / "corpus", index, "--shard", "1/3")
    result = run("merge", index, ok=False)
    assert result.exit_code != 0
    assert "00002-of-00003" in result.output and "00000-of-00003" in result.output and "settings" in result.output
    assert not (index / "manifest.json").exists()

    other = tmp_path / "other"
    build(tiny_model, demo / "corpus", other, "--shard", "0/2")
    build(tiny_model, demo / "corpus", other, "--shard", "0/3")
    result = run("merge", other, ok=False)
    assert result.exit_code != 0 and "00000-of-00002" in result.output and "00000-of-00003" in result.output
    assert "no shards to merge" in run("merge", tmp_path / "empty", ok=False).output


@pytest.mark.parametrize("seed", range(20))
def test_picking_from_each_parts_reach_is_picking_from_the_pool(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    distance = rng.integers(0, 12, n) / 12.0                      # many ties, broken by id
    ids = np.array([f"d{i:04d}" for i in rng.permutation(n)], dtype=object)
    tokens = rng.integers(1, 400, n)
    parts = np.array_split(rng.permutation(n), int(rng.integers(1, 6)))
    for budget in (Budget(documents=int(rng.integers(1, n + 5))), Budget(tokens=int(rng.integers(1, tokens.sum() + 500)))):
        whole = pick(distance, lambda r: ids[r], tokens, budget)
        limit = reach([summarize(distance[part], tokens[part], bins=int(rng.integers(1, 9))) for part in parts], budget)
        rows = np.concatenate([part[distance[part] <= limit] for part in parts])
        merged = pick(distance[rows], lambda r: ids[rows[r]], tokens[rows], budget)
        assert rows[merged.rows].tolist() == whole.rows.tolist() and merged.exhausted == whole.exhausted


def test_what_the_parts_send_is_about_the_selection():
    rng = np.random.default_rng(0)
    n, bins = 200_000, 1024
    distance, tokens = rng.random(n), rng.integers(20, 400, n)
    parts = np.array_split(rng.permutation(n), 20)
    budget = Budget(tokens=int(0.2 * tokens.sum()))                  # the paper's 20%
    limit = reach([summarize(distance[part], tokens[part], bins) for part in parts], budget)
    sent = int((distance <= limit).sum())
    selected = len(pick(distance, lambda r: r.astype(str), tokens, budget).rows)
    assert selected < sent <= selected + len(parts) * 3 * n // len(parts) // bins


@pytest.mark.parametrize("stored_hashes", [True, False], ids=["stored-id-hashes", "written-before-id-hashes"])
def test_merge_refuses_an_id_that_two_workers_both_indexed(tiny_model, tmp_path, stored_hashes):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, ids in (("a.jsonl", ["x1", "shared", "x2"]), ("b.jsonl", ["y1", "y2", "shared"])):
        (corpus / name).write_text("".join(json.dumps({"id": i, "text": f"text of {i} in {name}"}) + "\n" for i in ids))
    assert "duplicate id 'shared'" in build(tiny_model, corpus, tmp_path / "whole", ok=False).output
    index = tmp_path / "sharded"
    build_shards(tiny_model, corpus, index, 2)
    if not stored_hashes:
        as_written_before_id_hashes(index)
    out = " ".join(run("merge", index, ok=False).output.split())
    assert "id 'shared' is in shard 00000-of-00002 (" in out and "a.jsonl, offset" in out
    assert "and in shard 00001-of-00002 (" in out and "b.jsonl, offset" in out
    assert not (index / "manifest.json").exists()
    (corpus / "b.jsonl").write_text(json.dumps({"id": "y3", "text": "text of y3"}) + "\n")
    shutil.rmtree(index / "shards" / "00001-of-00002")
    build(tiny_model, corpus, index, "--shard", "1/2")
    if not stored_hashes:
        as_written_before_id_hashes(index)
    run("merge", index)
    assert sorted(Index(index).ids) == ["shared", "x1", "x2", "y3"]
