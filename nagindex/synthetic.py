"""Synthetic NAGs with the structure of real ones, for tests and benchmarks of search.

Exact scoring only needs a realistic lookup pattern, but the quality of
approximate search depends on how NAGs share neurons. In SmolLM2's real
``fwd_up`` NAGs (the parity fixture), about 7 neurons per layer are in 90% of
texts and half of a text's slots are shared by most texts. The documents here
are drawn around a few hundred topics from a mixture fitted to those
statistics: in every layer, 8 near-universal neurons (each present with
probability 0.95), then draws from a Zipf-weighted list of 48 common neurons,
from the document's topic (or a second topic it mixes in), and a little
uniform noise. A document is a function of its row, so stores of any size are
written block by block, and held-out target examples are rows far past the pool.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit, prange

from .atomic import atomic_path
from .sketch import Sketch
from .store import Rows, StoreWriter

LAYERS, K, NEURONS = 30, 20, 1536
NEURON_TYPE = "fwd_up"
TOPICS = 300
ALWAYS, P_ALWAYS = 8, 0.95     # near-universal neurons per layer, and how often each is present
COMMON, P_COMMON = 48, 0.5     # common neurons per layer (Zipf weights), and the share of draws from them
POOL = 64                      # neurons a topic prefers per layer (Zipf weights over a Zipf-popular choice)
TABLE = 4096                   # sampling tables: a uniform index into them draws from a weighted list
WRITE_ROWS = 1 << 18          # documents written at a time


# -- the synthetic pool ---------------------------------------------------------

@dataclass(frozen=True)
class Pool:
    """What the synthetic NAGs are drawn from; a document is a function of its row."""

    always: np.ndarray     # int64 [L, ALWAYS]
    common: np.ndarray     # int64 [L, TABLE]: common neurons, by weight
    topics: np.ndarray     # int64 [TOPICS, L, TABLE]: each topic's neurons, by weight
    topic_of: np.ndarray   # int64 [TABLE]: topics by size (Zipf, exponent 0.5)
    neurons: int
    top_k: int
    seed: int

    @classmethod
    def make(cls, seed: int = 0, layers: int = LAYERS, neurons: int = NEURONS, top_k: int = K,
             topics: int = TOPICS) -> Pool:
        rng = np.random.default_rng(seed)
        always = np.stack([rng.choice(neurons, ALWAYS, replace=False) for _ in range(layers)])
        common = np.stack([_table(rng.choice(neurons, COMMON, replace=False), 1.0) for _ in range(layers)])
        popular = 1.0 / np.arange(1, neurons + 1) ** 1.1
        popular /= popular.sum()
        table = np.empty((topics, layers, TABLE), np.int64)
        for layer in range(layers):
            order = rng.permutation(neurons)
            for t in range(topics):
                table[t, layer] = _table(order[rng.choice(neurons, POOL, replace=False, p=popular)], 0.8)
        return cls(always, common, table, _table(np.arange(topics), 0.5), neurons, top_k, seed)

    def codes(self, first_row: int, n: int, topic: int = -1) -> np.ndarray:
        """Documents ``first_row .. first_row + n`` (of ``topic`` alone, if given)."""
        out = np.empty((n, self.always.shape[0], self.top_k), np.uint16)
        _fill(out, first_row, self.seed, topic, self.always, P_ALWAYS, self.common, P_COMMON, self.topics,
              self.topic_of, self.neurons)
        return out


def _table(items: np.ndarray, exponent: float) -> np.ndarray:
    """``TABLE`` entries in which ``items[i]`` fills a share proportional to ``(i + 1) ** -exponent``."""
    w = 1.0 / np.arange(1, len(items) + 1) ** exponent
    edges = np.cumsum(w / w.sum())
    return items[np.minimum(np.searchsorted(edges, (np.arange(TABLE) + 0.5) / TABLE), len(items) - 1)].astype(np.int64)


@njit(inline="always")
def _next(x):
    """splitmix64: the next state and its output."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    z = x
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x, z ^ (z >> np.uint64(31))


@njit(parallel=True, cache=True)
def _fill(out, first_row, seed, topic, always, p_always, common, p_common, topics, topic_of, neurons):
    n, layers, k_max = out.shape
    mask = np.uint64(TABLE - 1)
    for i in prange(n):
        x = np.uint64(first_row + i) * np.uint64(0xD1B54A32D192ED03) ^ np.uint64(seed)
        x, z = _next(x)
        first = topic if topic >= 0 else topic_of[z & mask]
        second = np.int64((z >> np.uint64(12)) % np.uint64(topics.shape[0]))
        share = 0.5 + 0.5 * ((z >> np.uint64(32)) & np.uint64(0xFFFF)) / 65536.0   # of draws from ``first``
        focus = 0.6 + 0.4 * (z >> np.uint64(48)) / 65536.0                        # of non-common draws on topic
        taken = np.zeros(neurons, np.bool_)
        for layer in range(layers):
            k = 0
            for a in range(always.shape[1]):
                x, z = _next(x)
                if (z & np.uint64(0xFFFF)) / 65536.0 < p_always:
                    out[i, layer, k] = always[layer, a]
                    taken[always[layer, a]] = True
                    k += 1
            while k < k_max:
                x, z = _next(x)
                u = (z & np.uint64(0xFFFF)) / 65536.0
                v = (z >> np.uint64(16)) & mask
                w = ((z >> np.uint64(32)) & np.uint64(0xFFFF)) / 65536.0
                if u < p_common:
                    c = common[layer, v]
                elif u < p_common + (1.0 - p_common) * focus:
                    c = topics[first if w < share else second, layer, v]
                else:
                    c = np.int64(((z >> np.uint64(32)) * np.uint64(neurons)) >> np.uint64(32))
                if not taken[c]:
                    out[i, layer, k] = c
                    taken[c] = True
                    k += 1
            for j in range(k_max):
                taken[out[i, layer, j]] = False


def write_store(path: Path, pool: Pool, docs: int, first_row: int = 0) -> None:
    """A complete code store of the ``docs`` documents from row ``first_row`` on (ids ``doc-ROW``),
    slot counts included: the stores of consecutive rows are the shards of one pool."""
    with atomic_path(path) as tmp, StoreWriter(tmp, docs, {NEURON_TYPE: pool.neurons}) as out:
        for start in range(0, docs, WRITE_ROWS):
            rows = np.arange(first_row + start, first_row + min(docs, start + WRITE_ROWS))
            out.write(start, Rows(ids=np.char.add("doc-", rows.astype(str)).tolist(),
                                  tokens=50 + (rows * 2654435761) % 400, source_file=np.zeros(len(rows), np.uint32),
                                  source_offset=rows, codes={NEURON_TYPE: pool.codes(rows[0], len(rows))}))


def header(pool: Pool, spec: str | None, dim: int) -> dict:
    """What a real build records, for a synthetic backbone; ``spec`` None: no vectors (exact search only)."""
    layers = pool.always.shape[0]
    return {
        "backbone": {"name": "synthetic", "sha256": "0" * 64, "architecture": "synthetic"},
        "settings": {"neuron_types": [NEURON_TYPE], "top_k": pool.top_k, "max_length": 120},
        "layers": layers,
        "neurons": {NEURON_TYPE: pool.neurons},
        "vectors": None if spec is None else
                   {"neuron_type": NEURON_TYPE, "faiss": spec, "sketch": Sketch(layers, pool.neurons, dim).as_dict()},
    }
