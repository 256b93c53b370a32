"""``tools.code_entropy``: how small an index's codes could be, from the pool statistics it keeps."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np

from tools.code_entropy import entropy_bits


def test_uniform_ids_cost_their_width_and_a_certain_id_nothing():
    h = entropy_bits(np.array([[5.0] * 1024, [0.0] * 1023 + [7.0]]))
    np.testing.assert_allclose(h, [10.0, 0.0], atol=1e-12)


def test_it_reports_an_index_in_bytes_a_document(demo_index):
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "tools.code_entropy", str(demo_index)], cwd=root,
                         capture_output=True, text=True, check=True).stdout
    assert "bits an id: entropy" in out and "fixed width" in out
    entropy = float(out.split("entropy ")[1].split()[0])
    neurons = int(out.split("N = ")[1].split(",")[0])
    assert 0 < entropy <= math.log2(neurons)
