"""The GPU scoring path, checked on the CPU device: the same sums as the numba kernel."""
from __future__ import annotations

import numpy as np
import pytest

from query.scoring import score_stream
from query.scoring_torch import score_stream_torch


def chunks(codes, size):
    for start in range(0, len(codes), size):
        yield start, codes[start:start + size]


@pytest.mark.parametrize("targets", [1, 3, 9])
def test_torch_scoring_equals_the_kernel(targets):
    rng = np.random.default_rng(targets)
    codes = rng.integers(0, 50, size=(1000, 6, 8)).astype(np.uint16)
    table = rng.integers(0, 40, size=(4, 50, targets)).astype(np.float32)
    layers = np.array([0, 2, 3, 5])
    want = score_stream(chunks(codes, 300), len(codes), table, layers, 5)
    got = score_stream_torch(chunks(codes, 300), len(codes), table, layers, 5, device="cpu")
    np.testing.assert_array_equal(got, want)


def test_out_of_range_codes_are_refused():
    codes = np.full((4, 2, 3), 60, np.uint16)
    with pytest.raises(ValueError, match="out of range"):
        score_stream_torch(chunks(codes, 2), 4, np.ones((2, 50, 1), np.float32), np.array([0, 1]), 3, device="cpu")
