"""The streaming selection: one pass, memory that follows the selection, and exactly the whole-pool selection."""
from __future__ import annotations

import numpy as np
import pytest

from query import Budget, Selector, read_targets
from query.select import Stream, pick


def streamed(similarity: np.ndarray, ids: np.ndarray, tokens: np.ndarray, budget: Budget, chunk: int, floor: int):
    stream = Stream(budget, tokens.__getitem__, len(tokens), int(tokens.sum()), floor=floor)
    for start in range(0, len(similarity), chunk):
        stream.add(start, similarity[start:start + chunk])
    return stream, stream.pick(lambda rows: ids[rows])


def pool(seed: int, n: int, levels: int):
    """Similarities on a coarse grid, as integer count tables give: most documents tie with many others."""
    rng = np.random.default_rng(seed)
    similarity = rng.integers(0, levels, n) / levels
    ids = np.array([f"doc-{i}" for i in rng.permutation(n)], dtype=object)   # id order is not row order
    tokens = rng.integers(1, 300, n).astype(np.int64)
    return similarity, ids, tokens


@pytest.mark.parametrize("seed,levels", [(0, 7), (1, 40), (2, 1000)])
def test_stream_selects_what_the_whole_pool_selects(seed, levels):
    n = 5000
    similarity, ids, tokens = pool(seed, n, levels)
    total = int(tokens.sum())
    budgets = [Budget(documents=1), Budget(documents=37), Budget(documents=900), Budget(documents=n),
               Budget(documents=n + 5), Budget(tokens=1), Budget(tokens=5000), Budget(tokens=total // 5),
               Budget(tokens=total - 1), Budget(tokens=total)]
    for budget in budgets:
        want = pick(1.0 - similarity, lambda rows: ids[rows], tokens, budget)
        for chunk, floor in ((97, 10), (1000, 50), (n, 10**6)):
            _, (got, sims) = streamed(similarity, ids, tokens, budget, chunk, floor)
            np.testing.assert_array_equal(got.rows, want.rows, err_msg=f"{budget} chunk {chunk}")
            np.testing.assert_array_equal(got.distance, want.distance)
            np.testing.assert_array_equal(sims, similarity[want.rows])
            assert got.exhausted == want.exhausted, budget


def test_stream_memory_follows_the_selection_not_the_pool():
    n = 200_000
    similarity, ids, tokens = pool(3, n, 50_000)
    stream, (got, _) = streamed(similarity, ids, tokens, Budget(documents=1000), chunk=4096, floor=2000)
    assert len(got.rows) == 1000
    assert stream.kept < 10_000          # a few times the selection, against 200,000 scored


def test_query_selection_equals_the_whole_pool_ranking(demo_index, demo_corpus):
    sel = Selector(demo_index)
    targets = read_targets(demo_corpus / "targets.jsonl")
    profiles = sel.profiles(targets)
    sims = sel.similarities(profiles)
    idx = sel.index
    for budget in (Budget(documents=7), Budget(fraction=0.2), Budget(tokens=1), Budget(fraction=1.0)):
        table = sel.select(targets, budget).table.to_pylist()
        for m, (name, b) in enumerate(zip(profiles.names, budget.split([1.0] * len(profiles.names), int(idx.tokens.sum())))):
            want = pick(1.0 - sims[:, m], idx.ids_of, idx.tokens, b)
            mine = [r for r in table if r["target"] == name]
            assert [r["id"] for r in mine] == idx.ids_of(want.rows).tolist()
            assert [r["similarity"] for r in mine] == sims[want.rows, m].tolist()
