"""Fixed-length vectors for FAISS, derived from NAGs.

The similarity of DESIGN.md §2 is an inner product between a document's bitset
over (layer, neuron) slots and the target's profile over the same slots. Both
are sketched with the same signed feature hashing (each slot adds its sign to
one of ``dim`` buckets), which preserves inner products in expectation, so
FAISS inner-product search over sketches ranks approximately as the exact
score does. The approximate search then re-scores its candidates exactly from
the codes, so the sketch only has to put the right documents among them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_DIM = 256
DEFAULT_FAISS = "SQ8"


@dataclass(frozen=True)
class Sketch:
    """Signed hashing of ``layers x neurons`` slots into ``dim`` dimensions."""

    layers: int
    neurons: int
    dim: int = DEFAULT_DIM
    seed: int = 0

    def as_dict(self) -> dict:
        return {"kind": "signed-hash", "layers": self.layers, "neurons": self.neurons, "dim": self.dim, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict) -> "Sketch":
        return cls(int(d["layers"]), int(d["neurons"]), int(d["dim"]), int(d["seed"]))

    def _tables(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        slots = self.layers * self.neurons
        return rng.integers(0, self.dim, slots), rng.choice(np.float32([-1.0, 1.0]), slots)

    def documents(self, codes: np.ndarray) -> np.ndarray:
        """Sketches ``[n, dim]`` of documents' codes ``[n, L, K]``."""
        bucket, sign = self._tables()
        n, L, K = codes.shape
        slots = codes.astype(np.int64) + (np.arange(L, dtype=np.int64) * self.neurons)[None, :, None]
        flat = (np.arange(n, dtype=np.int64)[:, None, None] * self.dim + bucket[slots]).ravel()
        out = np.bincount(flat, weights=sign[slots].ravel(), minlength=n * self.dim)
        return out.reshape(n, self.dim).astype(np.float32)

    def profile(self, weights: np.ndarray) -> np.ndarray:
        """Sketch of a profile given as weights ``[L, N]`` over the slots."""
        bucket, sign = self._tables()
        out = np.bincount(bucket, weights=sign * weights.reshape(-1), minlength=self.dim)
        return out.astype(np.float32)
