"""Joining two shards' sorted id hashes a block at a time: every shared hash found, wherever the blocks are cut."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from nagindex.idhash import shared_rows

TOP = np.uint64(2**64 - 1)


def blocks(hashes, cuts, first_row=0):
    """``(hashes, rows)`` of ascending ``hashes`` cut before each position in ``cuts`` (repeats: empty blocks)."""
    hashes = np.asarray(hashes, np.uint64)
    rows = np.arange(first_row, first_row + len(hashes))
    edges = [0, *cuts, len(hashes)]
    return [(hashes[a:b], rows[a:b]) for a, b in zip(edges, edges[1:])]


def pairs(a, b):
    return [(int(x), int(y)) for rows_a, rows_b in shared_rows(a, b) for x, y in zip(rows_a, rows_b)]


def expected(a, b):
    """Every pair of rows of the same hash, by brute force, in ascending hash order."""
    entries = [[(int(h), int(r)) for hashes, rows in side for h, r in zip(hashes, rows)] for side in (a, b)]
    found = [(h, x, y) for (h, x), (g, y) in itertools.product(*entries) if h == g]
    return [(x, y) for _, x, y in sorted(found)]


def test_a_hash_shared_across_block_boundaries_is_found_once():
    a = blocks([1, 2, 3, 5, 9], [3])              # [1 2 3] [5 9]
    b = blocks([3, 5, 6, 9], [1, 2], 100)         # [3] [5] [6 9]
    assert pairs(a, b) == [(2, 100), (3, 101), (4, 103)]


def test_a_repeated_hash_pairs_every_row_of_each_side_even_split_over_blocks():
    a = blocks([4, 4, 4, 7], [1, 2])              # [4] [4] [4 7]
    b = blocks([2, 4, 4, 7, 7], [2, 4], 100)      # [2 4] [4 7] [7]
    assert sorted(pairs(a, b)) == sorted([(x, y) for x in (0, 1, 2) for y in (101, 102)] + [(3, 103), (3, 104)])


def test_no_overlap_and_empty_sides_share_nothing():
    assert pairs(blocks([1, 3, 5], [1]), blocks([2, 4, 6], [2])) == []
    assert pairs(blocks([1, 2], [1]), blocks([7, 8, 9], [1])) == []
    assert pairs([], blocks([1, 2], [1])) == [] and pairs(blocks([1, 2], [1]), []) == []
    assert pairs(blocks([], [0, 0]), blocks([], [])) == []


def test_the_largest_hash_is_joined_too():
    assert pairs(blocks([1, TOP], [1]), blocks([TOP], [])) == [(1, 0)]


@pytest.mark.parametrize("seed", range(30))
def test_any_cut_of_any_sorted_hashes_gives_the_pairs_of_a_whole_comparison(seed):
    rng = np.random.default_rng(seed)
    sides = []
    for first_row in (0, 1000):
        hashes = np.sort(rng.integers(0, 40, rng.integers(0, 60)).astype(np.uint64))
        cuts = np.sort(rng.integers(0, len(hashes) + 1, rng.integers(0, 8)))
        sides.append(blocks(hashes, cuts.tolist(), first_row))
    assert pairs(*sides) == expected(*sides)


def test_a_block_of_each_side_is_read_ahead_no_more():
    pulled = {"a": 0, "b": 0}

    def counted(name, parts):
        for part in parts:
            pulled[name] += 1
            yield part

    a = counted("a", blocks(np.arange(0, 1000, 2), range(10, 500, 10)))      # 50 blocks
    b = counted("b", blocks(np.arange(0, 1000, 3), range(10, 334, 10)))      # 34 blocks
    joined = shared_rows(a, b)
    first, _ = next(joined)
    assert pulled["a"] <= 2 and pulled["b"] <= 2
    assert len(first) + sum(len(rows) for rows, _ in joined) == len(range(0, 1000, 6))
