"""The scoring kernels against plain NumPy, and the checks that guard them."""
from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from query.scoring import numpy_gather, score_codes, score_stream

L, K, N = 6, 10, 300


def codes(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, N, (n, L, K)).astype(np.uint16)


def count_table(layers, targets: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1000, (len(layers), N, targets)).astype(np.float32)


def weight_table(layers, targets: int, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.random((len(layers), N, targets)) ** 4
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


CASES = [(np.arange(L), K), (np.array([5, 0, 3]), 7), (np.array([2]), 1), (np.array([1, 4]), 9)]


@pytest.mark.parametrize("targets", [1, 3, 8, 9])
@pytest.mark.parametrize("layers,top_k", CASES)
def test_integer_tables_are_exact(targets, layers, top_k):
    c = codes(203)  # not a whole number of blocks
    table = count_table(layers, targets)
    got = score_codes(c, table, layers, top_k)
    assert got.shape == (203, targets) and got.dtype == np.float32
    np.testing.assert_array_equal(got, numpy_gather(c, table, layers, top_k))
    slow = sum(table[j, c[:, layer, :top_k]].astype(np.int64).sum(axis=1) for j, layer in enumerate(layers))
    np.testing.assert_array_equal(got, slow)


@pytest.mark.parametrize("targets", [1, 3, 8, 9])
@pytest.mark.parametrize("layers,top_k", CASES)
def test_float_tables_match(targets, layers, top_k):
    c = codes(203, seed=3)
    table = weight_table(layers, targets)
    np.testing.assert_allclose(score_codes(c, table, layers, top_k), numpy_gather(c, table, layers, top_k),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("targets", [1, 9])
def test_stream_equals_one_call(targets):
    c = codes(500, seed=5)
    layers, top_k = np.array([0, 2, 5]), 8
    table = weight_table(layers, targets)
    bounds = [0, 7, 64, 65, 300, 500]
    chunks = ((a, c[a:b]) for a, b in pairwise(bounds))
    np.testing.assert_array_equal(score_stream(chunks, len(c), table, layers, top_k),
                                  score_codes(c, table, layers, top_k))


def test_empty_input():
    table = count_table(np.arange(L), 3)
    assert score_codes(codes(0), table, np.arange(L), K).shape == (0, 3)
    assert score_stream(iter(()), 0, table, np.arange(L), K).shape == (0, 3)


@pytest.mark.parametrize("targets", [1, 3])
def test_out_of_range_code_is_reported(targets):
    c = codes(100)
    c[71, L - 1, K - 1] = N  # in a layer and a position the query does not even use
    table = count_table([0, 1], targets)
    with pytest.raises(ValueError, match="code 300 at row 71"):
        score_codes(c, table, [0, 1], 4)
    with pytest.raises(ValueError, match="code 300 at row 71"):
        score_stream(((a, c[a:a + 50]) for a in (0, 50)), 100, table, [0, 1], 4)


@pytest.mark.parametrize("mutate,message", [
    (lambda c, t, ly, k: (c.astype(np.int32), t, ly, k), "codes must be a uint16 array"),
    (lambda c, t, ly, k: (c[:, :, 0], t, ly, k), "codes must be a uint16 array"),
    (lambda c, t, ly, k: (c[::2], t, ly, k), "codes must be C-contiguous"),
    (lambda c, t, ly, k: (c, t.astype(np.float64), ly, k), "table must be a float32 array"),
    (lambda c, t, ly, k: (c, t[:, :, 0], ly, k), "table must be a float32 array"),
    (lambda c, t, ly, k: (c, np.asfortranarray(t), ly, k), "table must be C-contiguous"),
    (lambda c, t, ly, k: (c, t, ly[:-1], k), "layers has 1 entries but the table has 2"),
    (lambda c, t, ly, k: (c, t, np.array([0.0, 1.0]), k), "layers must be a 1-D integer array"),
    (lambda c, t, ly, k: (c, t, np.array([0, L]), k), "layers must lie in"),
    (lambda c, t, ly, k: (c, t, np.array([-1, 0]), k), "layers must lie in"),
    (lambda c, t, ly, k: (c, t, ly, K + 1), "top_k=11 exceeds the 10 codes"),
    (lambda c, t, ly, k: (c, t, ly, 0), "top_k must be a positive integer"),
])
def test_bad_inputs_raise(mutate, message):
    args = mutate(codes(20), count_table([0, 1], 3), np.array([0, 1]), 5)
    with pytest.raises(ValueError, match=message):
        score_codes(*args)


def test_stream_checks_its_chunks():
    c = codes(100)
    table = count_table(np.arange(L), 1)
    with pytest.raises(ValueError, match="expected 50"):
        score_stream([(0, c[:50]), (60, c[60:])], 100, table, np.arange(L), K)
    with pytest.raises(ValueError, match="covered 50 rows, expected n=100"):
        score_stream([(0, c[:50])], 100, table, np.arange(L), K)
    with pytest.raises(ValueError, match="runs past n=90"):
        score_stream([(0, c)], 90, table, np.arange(L), K)
    with pytest.raises(ValueError, match="codes must be a uint16 array"):
        score_stream([(0, c.astype(np.int64))], 100, table, np.arange(L), K)
