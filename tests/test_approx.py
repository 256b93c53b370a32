"""Approximate search: FAISS candidates re-scored exactly, and when ``auto`` uses it."""
from __future__ import annotations

import faiss
import numpy as np
import pytest

from nagindex import faiss_index
from nagindex.errors import NagindexError
from nagindex.faiss_index import MAX_K, gpus
from nagindex.index import Index
from nagindex.sketch import Sketch
from nagindex.verify import verify
from nagindex.store import Rows, write_rows
from nagindex.synthetic import NEURON_TYPE, Pool
from indexer.synthetic import make_index
from query.approx import AUTO_MIN_POOL, searcher, choose, resolve
from query.budget import Budget
from query.profile import ScoreSpec, build_profiles
from query.selector import Selector
from query.targets import Targets
from helpers import run

needs_faiss_gpu = pytest.mark.skipif(not gpus(), reason="needs faiss-gpu (nagindex[gpu]) and a GPU")

LAYERS, NEURONS, TOP_K, TOPICS = 8, 256, 16, 40
SHARD_DOCS = (5000, 7000)
DIM = 512
TARGET_TOPICS = (0, 7, 25)


@pytest.fixture(scope="module")
def pool() -> Pool:
    return Pool.make(3, LAYERS, NEURONS, TOP_K, TOPICS)


def _write_store(path, codes: np.ndarray, first: int, tokens: np.ndarray):
    rows = np.arange(first, first + len(codes))
    write_rows(path, Rows(ids=[f"doc-{r:06d}" for r in rows], tokens=tokens, source_file=np.zeros(len(rows), np.uint32),
                          source_offset=rows, codes={NEURON_TYPE: codes}), {NEURON_TYPE: NEURONS})
    return path


@pytest.fixture(scope="module")
def stores(pool, tmp_path_factory) -> list:
    directory = tmp_path_factory.mktemp("stores")
    firsts = np.cumsum((0, *SHARD_DOCS[:-1]))
    return [_write_store(directory / f"store-{i}.h5", pool.codes(first, n), first, 20 + np.arange(first, first + n) % 97)
            for i, (first, n) in enumerate(zip(firsts, SHARD_DOCS))]


@pytest.fixture(scope="module")
def flat(pool, stores, tmp_path_factory):
    path = tmp_path_factory.mktemp("flat") / "pool.index"
    make_index(path, stores, pool, "PQ128x4fs", DIM)
    return path


@pytest.fixture(scope="module")
def ivf(pool, stores, tmp_path_factory):
    path = tmp_path_factory.mktemp("ivf") / "pool.index"
    make_index(path, stores, pool, "IVF32,PQ128x4fs", DIM)
    return path


def _targets(pool: Pool) -> tuple[np.ndarray, Targets]:
    """Target examples: synthetic documents of a few topics, and their NAGs."""
    codes = np.concatenate([pool.codes((1 << 40) + 100 * t, 30, topic=t) for t in TARGET_TOPICS])
    names = [f"topic-{t}" for t in TARGET_TOPICS for _ in range(30)]
    return codes, Targets([f"example {i}" for i in range(len(codes))], names)


def _selector(path, pool: Pool) -> tuple[Selector, Targets]:
    codes, targets = _targets(pool)
    selector = Selector(path)
    selector.target_codes = lambda texts: {NEURON_TYPE: codes}
    return selector, targets


@pytest.fixture(scope="module")
def skewed(pool, tmp_path_factory):
    """One shard whose best documents for the targets are far shorter than the rest."""
    directory = tmp_path_factory.mktemp("skewed")
    n = SHARD_DOCS[0]
    codes, targets = _targets(pool)
    groups = {name: codes[rows] for name, rows in targets.groups().items()}
    weights = build_profiles(groups, NEURONS, LAYERS, TOP_K, ScoreSpec()).weights()
    docs = pool.codes(0, n)
    scores = np.stack([w[np.arange(LAYERS)[:, None], docs].sum(axis=(1, 2)) for w in weights])
    best = np.unique(np.argsort(-scores, axis=1)[:, :1500])
    tokens = np.full(n, 300)
    tokens[best] = 5
    make_index(directory / "pool.index", [_write_store(directory / "store.h5", docs, 0, tokens)], pool, "PQ128x4fs", DIM)
    return directory / "pool.index"


def _rows(selection) -> list[list[str]]:
    table = selection.table.to_pydict()
    return [[i for i, t in zip(table["id"], table["target"]) if t == f"topic-{m}"] for m in TARGET_TOPICS]


@pytest.mark.parametrize("budget", [Budget(documents=300), Budget(tokens=40_000), Budget(fraction=0.2)])
@pytest.mark.parametrize("index", ["flat", "ivf"])
def test_candidates_covering_the_pool_select_exactly_what_the_scan_does(index, budget, pool, request):
    selector, targets = _selector(request.getfixturevalue(index), pool)
    exact = selector.select(targets, budget, search="exact")
    approx = selector.select(targets, budget, search="approx", oversample=len(selector.index))
    assert approx.table.to_pydict() == exact.table.to_pydict()
    assert any("re-scored exactly" in note for note in approx.notes)


def test_approximate_selections_carry_exact_scores_and_high_recall(flat, pool):
    selector, targets = _selector(flat, pool)
    k = 100
    approx = selector.select(targets, Budget(documents=k * len(TARGET_TOPICS)), search="approx")
    exact = selector.select(targets, Budget(documents=k * len(TARGET_TOPICS)), search="exact")
    similarity = selector.similarities(selector.profiles(targets))
    position = {i: r for r, i in enumerate(selector.index.ids)}
    table = approx.table.to_pydict()
    for doc, target, sim in zip(table["id"], table["target"], table["similarity"]):
        assert sim == similarity[position[doc], TARGET_TOPICS.index(int(target.split("-")[1]))]
    recall = [len(set(a) & set(e)) / k for a, e in zip(_rows(approx), _rows(exact))]
    assert min(recall) >= 0.9, recall


def test_a_token_budget_is_filled_when_its_first_plan_falls_short(skewed, pool):
    selector, targets = _selector(skewed, pool)
    limit = 3_000
    approx = selector.select(targets, Budget(tokens=limit * len(TARGET_TOPICS)), search="approx", oversample=1)
    table = approx.table.to_pydict()
    for m in TARGET_TOPICS:
        used = [t for t, name in zip(table["tokens"], table["target"]) if name == f"topic-{m}"]
        assert len(used) > 2 * limit / selector.index.tokens.mean()
        assert limit - 300 < sum(used) <= limit


def test_ivf_lists_visited_follow_nprobe(ivf, pool):
    selector, targets = _selector(ivf, pool)
    profiles = selector.profiles(targets)
    few = selector.approx.candidates(profiles, [2000] * len(TARGET_TOPICS), nprobe=1)
    many = selector.approx.candidates(profiles, [2000] * len(TARGET_TOPICS))
    assert len(few) < len(many)


def test_a_search_beyond_faiss_gpu_limits_runs_on_the_cpu_copy(flat):
    index = Index(flat)
    vectors = index.shards[0].vectors()
    index.close()
    on_gpus = faiss.IndexFlatIP(vectors.d)      # stands in for the GPUs' copy: only which one is asked matters
    assert searcher(vectors, on_gpus, MAX_K, None) is on_gpus
    assert searcher(vectors, on_gpus, MAX_K + 1, None) is vectors
    assert searcher(vectors, None, 10, None) is vectors


@needs_faiss_gpu
@pytest.mark.parametrize("spec", ["IVF32,SQ8", "IVF32,Flat"])
def test_faiss_gpu_builds_and_searches_what_the_cpu_does(spec, pool, stores, tmp_path):
    path = tmp_path / "pool.index"
    make_index(path, stores, pool, spec, DIM)                       # lists trained on the GPUs
    selector, targets = _selector(path, pool)
    assert all(copy is not None for copy in selector.approx.gpu_copies)
    budget = Budget(documents=100 * len(TARGET_TOPICS))
    on_gpus = selector.select(targets, budget, search="approx")
    on_cpu = _selector(path, pool)[0]
    on_cpu.device = "cpu"
    on_cpu = on_cpu.select(targets, budget, search="approx")
    exact = selector.select(targets, budget, search="exact")
    for g, c, e in zip(_rows(on_gpus), _rows(on_cpu), _rows(exact)):
        assert len(set(g) & set(c)) >= 0.98 * len(c)
        assert len(set(g) & set(e)) >= len(set(c) & set(e)) - 0.02 * len(e)


@needs_faiss_gpu
def test_fast_scan_vectors_stay_on_the_cpu(flat, pool):
    selector, _ = _selector(flat, pool)
    assert selector.approx.gpu_copies == [None] * len(SHARD_DOCS)


@pytest.mark.skipif(hasattr(faiss, "StandardGpuResources"), reason="the faiss module loaded is faiss-gpu's")
def test_faiss_gpu_shadowed_by_faiss_cpu_is_reported_with_the_fix(monkeypatch):
    monkeypatch.setattr(faiss_index, "version", lambda name: "1.15.1")
    faiss_index.gpus.cache_clear()
    try:
        with pytest.warns(UserWarning, match="pip uninstall -y faiss-cpu"):
            assert faiss_index.gpus() == 0
    finally:
        faiss_index.gpus.cache_clear()


def test_auto_scans_large_shares_and_approximates_small_k_on_large_pools():
    assert choose(20_000_000, [100_000_000]) == "exact"              # the paper's 20%
    assert choose(1_000, [100_000_000]) == "approx"
    assert choose(1_000, [10_000_000] * 10) == "approx"
    assert choose(1_000, [AUTO_MIN_POOL // 2]) == "exact"            # a small pool scans in seconds
    assert choose(1_000, [100_000_000], oversample=10**6) == "exact"
    assert choose(1_200_000, [100_000_000]) == "exact"
    assert choose(20_000, [1_000_000] * 100) == "exact"              # each of 100 shards re-scores 10x k


def test_resolve_says_why_approx_cannot_serve(flat):
    index = Index(flat)
    small = [Budget(documents=10)]
    assert resolve("exact", index, small, NEURON_TYPE, with_quality=False) == "exact"
    assert resolve("approx", index, small, NEURON_TYPE, with_quality=False) == "approx"
    assert resolve("auto", index, small, NEURON_TYPE, with_quality=True) == "exact"
    with pytest.raises(NagindexError, match="quality"):
        resolve("approx", index, small, NEURON_TYPE, with_quality=True)
    with pytest.raises(NagindexError, match="fwd_up, not att_q"):
        resolve("approx", index, small, "att_q", with_quality=False)


def test_an_index_without_vectors_serves_the_exact_scan_alone(pool, stores, flat, tmp_path, monkeypatch):
    path = tmp_path / "exact.index"
    make_index(path, stores, pool, spec=None)
    assert not list(path.glob("shards/*/vectors.faiss"))
    selector, targets = _selector(path, pool)
    budget = Budget(fraction=0.2)
    assert (selector.select(targets, budget, search="exact").table.to_pydict()
            == _selector(flat, pool)[0].select(targets, budget, search="exact").table.to_pydict())
    small = [Budget(documents=10)]
    monkeypatch.setattr("query.approx.AUTO_MIN_POOL", 1)        # auto would approximate on these pools
    assert resolve("auto", Index(flat), small, NEURON_TYPE, with_quality=False) == "approx"
    assert resolve("auto", selector.index, small, NEURON_TYPE, with_quality=False) == "exact"
    with pytest.raises(NagindexError, match="has no FAISS vectors.*use --search exact"):
        selector.select(targets, small[0], search="approx")
    # Refused before the targets' forward pass: the index's backbone (synthetic here) is never loaded.
    (tmp_path / "t.jsonl").write_text('{"text": "a target example"}\n')
    refused = run("query", tmp_path / "t.jsonl", "-i", path, "-k", 10, "--search", "approx", ok=False)
    assert refused.exit_code == 1
    assert f"--search approx: {path} has no FAISS vectors" in refused.output and "Traceback" not in refused.output
    # verify says of it what it says of the same stores with vectors, and reads no FAISS file
    assert [p.replace(str(path), "") for p in verify(path).problems] == [p.replace(str(flat), "") for p in verify(flat).problems]
    info = run("info", path).output
    assert "exact search only" in info and "vectors 0" in info


def test_vectors_hold_the_exact_score_when_every_slot_has_its_own_dimension(pool):
    codes = pool.codes(0, 500)
    counts = np.bincount((codes.astype(np.int64) + (np.arange(LAYERS) * NEURONS)[:, None]).ravel(),
                         minlength=LAYERS * NEURONS).reshape(LAYERS, NEURONS)
    sketch = Sketch(LAYERS, NEURONS, dim=2 * LAYERS * NEURONS)
    assert Sketch.from_dict(sketch.as_dict()) == sketch
    layout = sketch.layout(counts)
    profiles = build_profiles({"t": pool.codes(10**9, 20, topic=0)}, NEURONS, LAYERS, TOP_K, ScoreSpec())
    exact = (profiles.weights()[0][np.arange(LAYERS)[:, None], codes]).sum(axis=(1, 2))
    sketched = layout.documents(codes) @ layout.profiles(profiles.weights())[0]
    assert np.allclose(sketched, exact, rtol=1e-5)


def test_the_most_common_slots_get_their_own_dimensions(pool):
    counts = np.zeros((LAYERS, NEURONS))
    counts[2, 5], counts[0, 9] = 100, 50
    layout = Sketch(LAYERS, NEURONS, dim=64).layout(counts)
    assert layout.target[2 * NEURONS + 5] == 0 and layout.target[9] == 1
    assert np.bincount(layout.target[layout.target < 32], minlength=32).max() == 1
    assert (layout.target[np.argsort(-counts.ravel(), kind="stable")[32:]] >= 32).all()


def test_the_query_command_approximates_on_request(tiny_model, demo, tmp_path):
    from click.testing import CliRunner

    from nagindex.cli import main

    def run(*args):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        return result

    index = tmp_path / "demo.index"
    run("build", demo / "corpus", "-o", index, "--model", tiny_model, "--quiet")
    query = ("query", demo / "targets.jsonl", "-i", index, "-k", "12")
    exact = run(*query, "--search", "exact")
    approx = run(*query, "--search", "approx", "--oversample", "60", "--nprobe", "3")
    assert approx.stdout == exact.stdout
    assert "re-scored exactly" in approx.stderr


@pytest.mark.parametrize("budget", [Budget(documents=3000), Budget(tokens=300_000)])
def test_dedup_refills_approximate_selections_as_the_scan_does(flat, pool, budget):
    selector, targets = _selector(flat, pool)
    exact = selector.select(targets, budget, search="exact", dedup=True)
    assert any("--dedup passed over" in note for note in exact.notes)        # the targets share documents
    whole = selector.select(targets, budget, search="approx", dedup=True, oversample=len(selector.index))
    assert whole.table.to_pydict() == exact.table.to_pydict()
    approx = selector.select(targets, budget, search="approx", dedup=True)
    ids = approx.table.column("id").to_pylist()
    assert len(set(ids)) == len(ids)
    for got, want in zip(approx.summary, exact.summary):
        if budget.documents is not None:
            assert got["documents"] == want["documents"] == budget.documents // len(TARGET_TOPICS)
        else:
            assert budget.tokens // len(TARGET_TOPICS) - 120 < got["tokens"] <= budget.tokens // len(TARGET_TOPICS)
