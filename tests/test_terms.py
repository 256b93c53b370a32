"""BM25 term statistics: kept by `build --terms`, checked, resumed, merged, and scored by `--weighting bm25`."""
from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from helpers import build, query, rows, run
from nagindex.analyses.baselines import bm25_scores
from nagindex.extract import Extractor
from nagindex.index import Index
from nagindex.errors import NagindexError
from query import Budget, ScoreSpec, Selector, read_targets
from query.output import MANIFEST

BM25 = ScoreSpec(weighting="bm25")


@pytest.fixture(scope="module")
def terms_index(tiny_model, demo_corpus, tmp_path_factory) -> Path:
    """The demo corpus with term statistics; the backbone reads 12 tokens, so the texts BM25 reads are cut."""
    path = tmp_path_factory.mktemp("terms") / "terms.index"
    build(tiny_model, demo_corpus / "corpus", path, "--terms", "--max-length", "12", "--window", "16")
    return path


def baseline(index: Path, targets: Path) -> tuple[np.ndarray, list[str]]:
    """The BM25 baseline of the analyses over the same texts, truncated as the backbone reads them."""
    sel = Selector(index)
    t = read_targets(targets)
    pool = sel.extractor.truncate(sel.texts(np.arange(sel.index.documents)))
    texts = sel.extractor.truncate(t.texts)
    groups = {name: [texts[i] for i in r] for name, r in t.groups().items()}
    return bm25_scores(pool, groups), list(groups)


def by_id(index: Path, targets: Path) -> dict[str, np.ndarray]:
    sel = Selector(index)
    scores = sel.similarities(sel.profiles(read_targets(targets), BM25))
    return dict(zip(sel.index.ids.tolist(), scores))


def test_bm25_weighting_scores_as_the_baseline(terms_index, demo_corpus):
    targets = demo_corpus / "targets.jsonl"
    want, names = baseline(terms_index, targets)
    sel = Selector(terms_index)
    got = sel.similarities(sel.profiles(read_targets(targets), BM25))
    assert got.shape == want.shape and want.max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # The selection is the baseline's ranking (ties by id, as every ranking).
    out = rows(query(terms_index, targets, "-k", "20", "--weighting", "bm25", "--search", "exact").stdout)
    ids = sel.index.ids
    for m, name in enumerate(names):
        picked = [r["id"] for r in out if r["target"] == name]
        order = sorted(range(len(ids)), key=lambda d: (-round(float(want[d, m]), 4), ids[d]))
        assert [round(float(want[list(ids).index(i), m]), 4) for i in picked] == \
               [round(float(want[d, m]), 4) for d in order[:len(picked)]]


def test_info_shows_and_verify_checks_the_term_statistics(terms_index, tmp_path):
    own = tmp_path / "own.index"
    shutil.copytree(terms_index, own)
    info = run("info", own).output
    assert "terms " in info.split("bytes/document")[1] and "bm25s tokens" in info
    assert run("verify", own).exit_code == 0
    terms = next(own.glob("shards/*/terms.h5"))
    data = bytearray(terms.read_bytes())
    data[len(data) // 2] ^= 0xFF
    terms.write_bytes(bytes(data))
    result = run("verify", own, ok=False)
    assert result.exit_code != 0 and f"{terms}: sha256 differs" in result.output


def test_an_index_without_terms_and_approximate_search_are_refused(demo_index, terms_index, demo_corpus):
    targets = demo_corpus / "targets.jsonl"
    result = query(demo_index, targets, "-k", "5", "--weighting", "bm25", ok=False)
    assert result.exit_code != 0 and "this index has no term statistics; rebuild with --terms" in result.output
    result = query(terms_index, targets, "-k", "5", "--weighting", "bm25", "--search", "approx", ok=False)
    assert result.exit_code != 0 and "--search approx" in result.output and "--search exact" in result.output
    assert rows(query(terms_index, targets, "-k", "5", "--weighting", "bm25").stdout)   # auto: the scan
    # Ray queries and saved profiles score the codes' weight tables alone.
    with pytest.raises(NagindexError, match="--engine ray"):
        Selector(terms_index, engine="ray").select(read_targets(targets), Budget(documents=5), BM25)
    result = run("profile", targets, "-i", terms_index, "--weighting", "bm25", "-o", terms_index.parent / "p.npz",
                 ok=False)
    assert result.exit_code != 0 and "a saved profile holds the codes' weight tables alone" in result.output


def terms_of(index: Path) -> list[dict[str, np.ndarray]]:
    out = []
    for p in sorted(index.glob("shards/*/terms.h5")):
        with h5py.File(p, "r") as f:
            out.append({name: f[name][...] for name in f})
    return out


def test_a_resumed_build_keeps_the_same_statistics(tiny_model, demo, tmp_path, monkeypatch):
    clean, index = tmp_path / "clean", tmp_path / "i"
    build(tiny_model, demo / "corpus", clean, "--terms", "--window", "4")
    extract, calls = Extractor.run, itertools.count()

    def crash_after_three_windows(self, plan, *progress):
        if next(calls) == 3:
            raise RuntimeError("killed")
        return extract(self, plan, *progress)

    monkeypatch.setattr(Extractor, "run", crash_after_three_windows)
    assert build(tiny_model, demo / "corpus", index, "--terms", "--window", "4", ok=False).exit_code != 0
    monkeypatch.setattr(Extractor, "run", extract)
    assert "(12 resumed)" in build(tiny_model, demo / "corpus", index, "--terms", "--window", "4").output
    a, b = terms_of(clean), terms_of(index)
    assert len(a) == len(b) == 1 and a[0].keys() == b[0].keys()
    for name in a[0]:
        np.testing.assert_array_equal(a[0][name], b[0][name])


def test_a_sharded_build_ranks_as_a_whole_one(tiny_model, demo, tmp_path):
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    build(tiny_model, demo / "corpus", whole, "--terms")
    for i in range(3):
        build(tiny_model, demo / "corpus", sharded, "--shard", f"{i}/3", "--terms")
    run("merge", sharded)
    assert len(terms_of(sharded)) == 3
    targets = demo / "targets.jsonl"
    a, b = by_id(whole, targets), by_id(sharded, targets)
    assert a.keys() == b.keys()
    for doc_id, scores in a.items():
        np.testing.assert_allclose(b[doc_id], scores, rtol=1e-12)
    # Parts built without term statistics are not merged with parts that have them.
    mixed = tmp_path / "mixed"
    build(tiny_model, demo / "corpus", mixed, "--shard", "0/2", "--terms")
    build(tiny_model, demo / "corpus", mixed, "--shard", "1/2")
    result = run("merge", mixed, ok=False)
    assert result.exit_code != 0 and "terms" in result.output


def test_an_append_keeps_the_index_setting_and_refuses_another(tiny_model, demo, tmp_path):
    index = tmp_path / "i"
    build(tiny_model, demo / "corpus" / "web-00.jsonl", index, "--terms")
    result = run("build", demo / "corpus" / "web-02.parquet", "-o", index, "--model", tmp_path / "no-model",
                 "--append", "--no-terms", ok=False)
    assert result.exit_code == 1
    assert f"--no-terms: the index {index} was built with --terms" in result.output
    assert len(Index(index).shards) == 1
    build(tiny_model, demo / "corpus" / "web-02.parquet", index, "--append")
    assert len(terms_of(index)) == 2 and json.loads((index / "manifest.json").read_text())["terms"]
    assert run("verify", index).exit_code == 0


def test_auto_may_choose_a_fusion_with_bm25_and_records_it(tiny_model, demo, tmp_path):
    """A task of pool-like texts marked by two words the backbone's vocabulary lacks (one unknown token to
    it), which two pool documents share: BM25 sees the mark, NAGs do not."""
    corpus = demo / "corpus"
    (corpus / "marked.jsonl").write_text("".join(json.dumps({"id": f"m{i}", "text": f"zorblat quinzic note {i}"}) + "\n"
                                                 for i in range(2)))
    base = [json.loads(line)["text"] for line in (corpus / "web-00.jsonl").read_text().splitlines()][:12]
    targets = tmp_path / "targets.jsonl"
    targets.write_text("".join(json.dumps({"text": f"{' '.join(t.split()[:60])} zorblat quinzic", "target": "marked"}) + "\n" for t in base))
    index = tmp_path / "i"
    build(tiny_model, corpus, index, "--terms")
    out = tmp_path / "out"
    result = query(index, targets, "-k", "2", "-o", f"{out}/")
    choice, = json.loads((out / MANIFEST).read_text())["weighting_choice"]
    assert "bm25" in choice["weighting"].split("+"), choice["candidates"]
    assert {"paper+bm25", "classifier+bm25"} <= {c["weighting"] for c in choice["candidates"]}
    assert set(choice["standardised"]) == set(choice["weighting"].split("+"))
    assert all(s["sd"] > 0 for s in choice["standardised"].values())
    assert f"{choice['weighting']} for marked" in result.stderr
    # The fusion ranks the marked documents higher than the paper's weighting does, and the streaming
    # scan selects what the fused scores of the whole pool rank first.
    sel, t = Selector(index), read_targets(targets)
    ids = sel.index.ids.tolist()
    marked = [ids.index("m0"), ids.index("m1")]
    fused, paper = (sel.similarities(sel.profiles(t, ScoreSpec(weighting=w)))[:, 0] for w in ("auto", "paper"))
    rank = lambda sims: [int((sims > sims[d]).sum()) for d in marked]
    assert all(f < p for f, p in zip(rank(fused), rank(paper))), (rank(fused), rank(paper))
    top = [ids[d] for d in sorted(range(len(ids)), key=lambda d: (-fused[d], ids[d]))[:5]]
    assert [r["id"] for r in rows(query(index, targets, "-k", "5").stdout)] == top
    # Approximate search scores weight tables alone: there, auto leaves BM25 out.
    result = query(index, targets, "-k", "2", "--search", "approx")
    assert rows(result.stdout) and "bm25 for marked" not in result.stderr
