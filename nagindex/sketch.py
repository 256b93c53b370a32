"""Fixed-length vectors for FAISS, derived from NAGs.

The similarity of docs/design.md §1.2 is an inner product between a document's bitset
over (layer, neuron) slots and the target's profile over the same slots. A
linear map of both sides into ``dim`` dimensions keeps that inner product, up
to the collisions the map makes, so FAISS inner-product search over the
vectors ranks roughly as the exact score does; the approximate search then
re-scores its candidates exactly, so the vectors only have to put the right
documents among them.

Plain feature hashing of all slots does this badly on real NAGs. A few neurons
per layer sit in nearly every document's NAG (in SmolLM2's ``fwd_up``, about 7
per layer in 90% of texts, and half of a text's slots are ones most texts
share); every target's profile puts its largest weights on exactly those
slots, and each other slot of a document that lands in one of their buckets
picks up that large weight as noise. So the ``exact`` slots (half of ``dim``)
that the most documents hold get a dimension of their own, where they collide
with nothing, and only the remaining, rarer slots are feature-hashed (with
random signs, which keeps inner products unbiased) into the other half.
On the structured synthetic pool of ``tools/bench_faiss.py`` (10^6
documents), the share of the exact top 1000 found among 10x as many
candidates by exact inner products of the vectors went from 0.08 (256 hashed
dimensions) and 0.49 (2048) to 0.89 (1024, half of them exact) and 0.997
(2048, the default).

Which slots are the common ones is read from a shard's own slot counts (the
``df`` of its code store), so each shard's vectors have their own layout,
rebuilt identically at query time to sketch the profile for that shard.
Candidates of different shards are compared only after exact re-scoring, so
layouts need not agree across shards, and shards built by independent workers
stay independent.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .errors import IndexStateError

DEFAULT_DIM = 2048
DEFAULT_FAISS = "PQ512x4fs"
KIND = "common-slots+signed-hash"


@dataclass(frozen=True)
class Sketch:
    """The design shared by every shard of an index: sizes and the hashing seed."""

    layers: int
    neurons: int
    dim: int = DEFAULT_DIM
    seed: int = 0

    def __post_init__(self):
        if self.dim < 2:
            raise ValueError(f"sketch dimension {self.dim}: must be at least 2")

    @property
    def exact(self) -> int:
        """Dimensions given to single common slots: of a quarter, three eighths, half and three
        quarters of 1024 dimensions, half gave the best recall."""
        return min(self.dim // 2, self.layers * self.neurons)

    def as_dict(self) -> dict:
        return {"kind": KIND, "layers": self.layers, "neurons": self.neurons, "dim": self.dim,
                "exact": self.exact, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict) -> Sketch:
        if d.get("kind") != KIND:
            raise IndexStateError(f"vectors of kind {d.get('kind')!r}; this nagindex reads {KIND!r}: rebuild the index")
        return cls(int(d["layers"]), int(d["neurons"]), int(d["dim"]), int(d["seed"]))

    def shard_layout(self, store, neuron_type: str) -> SlotMap:
        """The layout of a shard's vectors, from its code store's slot counts (build and query alike)."""
        return self.layout(store.slot_counts(neuron_type))

    def layout(self, slot_counts: np.ndarray) -> SlotMap:
        """The layout of a shard whose documents hold each slot ``slot_counts[l, n]`` times."""
        slots = self.layers * self.neurons
        counts = np.asarray(slot_counts).reshape(-1)
        if len(counts) != slots:
            raise ValueError(f"slot counts for {len(counts)} slots, the sketch has {slots}")
        rng = np.random.default_rng(self.seed)
        target = rng.integers(self.exact, self.dim, slots)
        sign = rng.choice(np.float32([-1.0, 1.0]), slots)
        common = np.argsort(-counts, kind="stable")[:self.exact]
        target[common] = np.arange(self.exact)
        sign[common] = 1.0
        return SlotMap(self.neurons, self.dim, target.astype(np.int32), sign)


@dataclass(frozen=True)
class SlotMap:
    """One shard's map from slots to dimensions: slot ``s`` adds ``sign[s]`` to ``target[s]``."""

    neurons: int
    dim: int
    target: np.ndarray    # int32 [L * N]
    sign: np.ndarray      # float32 [L * N]

    def documents(self, codes: np.ndarray) -> np.ndarray:
        """Vectors ``[n, dim]`` of documents' codes ``[n, L, K]``."""
        if len(codes) and int(codes.max()) >= self.neurons:
            raise ValueError(f"code {int(codes.max())} out of range for {self.neurons} neurons")
        out = np.zeros((len(codes), self.dim), np.float32)
        _scatter_kernel()(np.ascontiguousarray(codes), self.target, self.sign, self.neurons, out)
        return out

    def profiles(self, weights: np.ndarray) -> np.ndarray:
        """Vectors ``[M, dim]`` of profiles given as weights ``[M, L, N]`` over the slots."""
        flat = weights.reshape(len(weights), -1)
        return np.stack([np.bincount(self.target, weights=self.sign * w, minlength=self.dim) for w in flat]
                        ).astype(np.float32)


@functools.cache
def _scatter_kernel():
    """Compiled on first use: the CLI imports this module for its defaults, and numba is slow to import."""
    import numba

    @numba.njit(parallel=True, nogil=True, cache=True)
    def scatter(codes, target, sign, neurons, out):
        n, layers, k = codes.shape
        for i in numba.prange(n):
            for layer in range(layers):
                base = layer * neurons
                for j in range(k):
                    slot = base + codes[i, layer, j]
                    out[i, target[slot]] += sign[slot]

    return scatter
