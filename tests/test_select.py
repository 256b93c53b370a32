"""Budgets and selections over random pools with many ties, against a plain sort."""
from __future__ import annotations

import functools

import numpy as np
import pytest

from query.budget import Budget, apportion
from query.select import pick, pick_each, ranking_of


def _pool(seed: int, n: int = 400, targets: int = 3):
    rng = np.random.default_rng(seed)
    distance = rng.integers(0, 12, (n, targets)) / 12.0          # few distinct values: ties everywhere
    ids = np.array([f"doc-{i:04d}" for i in rng.permutation(n)], dtype=object)
    tokens = rng.integers(1, 60, n)
    return distance, ids, tokens


def _oracle(distance, ids, tokens, budgets, dedup):
    """Sort each target's pool by (distance, id), drop what earlier targets took, fill the budget."""
    taken, out = set(), []
    for m, budget in enumerate(budgets):
        order = sorted(range(len(ids)), key=lambda r: (distance[r, m], ids[r]))
        free = [r for r in order if not (dedup and r in taken)]
        if budget.documents is not None:
            chosen = free[:budget.documents]
        else:
            used = np.cumsum(tokens[free])
            chosen = free[:max(int((used <= budget.tokens).sum()), 1)] if free else []
        out.append(chosen)
        taken |= set(chosen)
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dedup", [False, True])
@pytest.mark.parametrize("budget", [Budget(documents=150), Budget(documents=7), Budget(documents=500),
                                    Budget(tokens=2_500), Budget(tokens=9_000), Budget(fraction=0.4)])
def test_picks_are_a_plain_sort_less_what_earlier_targets_took(seed, dedup, budget):
    distance, ids, tokens = _pool(seed)
    ids_of = ids.__getitem__
    budgets = budget.split([1.0, 2.0, 1.0], int(tokens.sum()))
    rankings = [functools.partial(pick, distance[:, m], ids_of, tokens) for m in range(3)]
    picks, depths = pick_each(rankings, budgets, tokens.__getitem__, dedup)
    want = _oracle(distance, ids, tokens, budgets, dedup)
    assert [p.rows.tolist() for p in picks] == want
    for m, p in enumerate(picks):
        np.testing.assert_array_equal(p.distance, distance[p.rows, m])
        assert depths[m] >= len(p.rows)
    if budget.documents is not None:
        assert sum(len(p.rows) for p in picks) == min(budget.documents, 3 * len(ids) if not dedup else len(ids))


@pytest.mark.parametrize("seed", range(4))
def test_a_part_of_the_pool_ranks_as_the_whole_pool_does(seed):
    distance, ids, tokens = _pool(seed)
    d = distance[:, 0]
    part = np.flatnonzero(d <= np.sort(d)[200])            # every document up to some distance, ties included
    rank = ranking_of(part, d[part], ids.__getitem__, tokens[part])
    for budget in (Budget(documents=50), Budget(documents=200), Budget(tokens=3_000)):
        assert rank(budget).rows.tolist() == pick(d, ids.__getitem__, tokens, budget).rows.tolist()
    assert rank(Budget(documents=len(part))).exhausted


@pytest.mark.parametrize("total,weights,want", [
    (5, [1, 1], [3, 2]), (1, [1, 1], [1, 0]), (7, [1, 3], [2, 5]), (10, [1, 1, 1], [4, 3, 3]),
    (100, [0.2, 0.3, 0.5], [20, 30, 50]), (0, [1, 2], [0, 0]), (2, [1, 1, 1], [1, 1, 0])])
def test_shares_add_up_to_the_budget(total, weights, want):
    assert apportion(total, weights) == want
    assert [b.documents for b in Budget(documents=total).split(weights, 0)] == want


def test_token_shares_add_up_to_the_budget():
    assert sum(b.tokens for b in Budget(tokens=237_000).split([1, 1, 1], 0)) == 237_000
    assert [b.tokens for b in Budget(fraction=0.5).split([1, 1], 1003)] == [251, 250]
