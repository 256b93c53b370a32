"""Approximate search against the exact scan, on synthetic NAGs with real structure.

For each pool size, writes (once, then reuses) a synthetic code store with the
default backbone's shape (L = 30 layers, K = 20 codes, N = 1536 neurons), then
measures in one run, with the page cache warm:

- the exact scan: ``Selector.similarities`` over every code, then ``pick``, for
  all targets at once, and its selection for each k;
- for the default flat index and for an IVF-PQ index: build time (sketching,
  training, adding), bytes per document, and for each k the approximate query
  (FAISS candidates at the default oversampling, exact re-scoring, ``pick``),
  its FAISS search alone, and its recall@k: the share of the exact top k that
  it returns, averaged over the targets.

Why not the synthetic codes of tools/bench_query.py: exact scoring only needs
a realistic lookup pattern, but the vectors' quality depends on how NAGs share
neurons. In SmolLM2's real ``fwd_up`` NAGs (the parity fixture), about 7
neurons per layer are in 90% of texts and half of a text's slots are shared by
most texts; bench_query's documents share no neuron more than 7% of the time.
The documents here are drawn around a few hundred topics from a mixture fitted
to those statistics: in every layer, 8 near-universal neurons (each present
with probability 0.95), then draws from a Zipf-weighted list of 48 common
neurons, from the document's topic (or a second topic it mixes in), and a
little uniform noise. Targets are 64 held-out documents of one topic each,
topics of different sizes, with the paper's count weighting.

    python -m tools.bench_faiss --docs 1000000 3000000 --dir /tmp/nagfaiss
"""
from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import h5py
import numpy as np
from numba import njit, prange

from indexer.vectors import build_vectors
from nagindex.atomic import atomic_path, write_json
from nagindex.faiss_index import gpus
from nagindex.index import CODES, SHARD_META, VECTORS, Index, manifest_for, shards_dir, write_manifest
from nagindex.sketch import DEFAULT_DIM, DEFAULT_FAISS, Sketch
from nagindex.store import CHUNK_ROWS, STR, CodeStore, add_slot_counts
from query.approx import DEFAULT_OVERSAMPLE, ApproxSearch
from query.budget import Budget
from query.profile import Profiles, ScoreSpec, build_profiles
from query.select import pick
from query.selector import Selector

LAYERS, K, NEURONS = 30, 20, 1536
NEURON_TYPE = "fwd_up"
TOPICS = 300
ALWAYS, P_ALWAYS = 8, 0.95     # near-universal neurons per layer, and how often each is present
COMMON, P_COMMON = 48, 0.5     # common neurons per layer (Zipf weights), and the share of draws from them
POOL = 64                      # neurons a topic prefers per layer (Zipf weights over a Zipf-popular choice)
TABLE = 4096                   # sampling tables: a uniform index into them draws from a weighted list
WRITE_ROWS = 1 << 18


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

    def profiles(self, topics: list[int], examples: int = 64) -> Profiles:
        """The paper's profiles of ``examples`` held-out documents of each topic."""
        groups = {f"topic-{t}": self.codes((1 << 40) + t * examples, examples, topic=t) for t in topics}
        return build_profiles(groups, self.neurons, self.always.shape[0], self.top_k, ScoreSpec())


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


# -- a synthetic index ------------------------------------------------------------

def write_store(path: Path, pool: Pool, docs: int) -> None:
    """A complete code store of ``docs`` documents, in the layout of nagindex.store, slot counts included."""
    layers = pool.always.shape[0]
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            def dataset(name, dtype, tail=()):
                return f.create_dataset(name, shape=(docs, *tail), dtype=dtype, chunks=(min(docs, CHUNK_ROWS), *tail))

            codes = dataset(f"codes/{NEURON_TYPE}", np.uint16, (layers, pool.top_k))
            ids, tokens = dataset("ids", STR), dataset("tokens", np.int64)
            source_file, source_offset = dataset("source_file", np.uint32), dataset("source_offset", np.int64)
            for start in range(0, docs, WRITE_ROWS):
                rows = np.arange(start, min(docs, start + WRITE_ROWS))
                codes[rows[0]:rows[-1] + 1] = pool.codes(start, len(rows))
                ids[rows[0]:rows[-1] + 1] = np.char.add("doc-", rows.astype(str)).astype(object)
                tokens[rows[0]:rows[-1] + 1] = 50 + (rows * 2654435761) % 400
                source_file[rows[0]:rows[-1] + 1] = 0
                source_offset[rows[0]:rows[-1] + 1] = rows
            f.attrs["rows"] = docs
        add_slot_counts(tmp, {NEURON_TYPE: pool.neurons})


def header(pool: Pool, spec: str, dim: int) -> dict:
    """What a real build records, for a synthetic backbone."""
    layers = pool.always.shape[0]
    return {
        "backbone": {"name": "synthetic", "sha256": "0" * 64, "architecture": "synthetic"},
        "settings": {"neuron_types": [NEURON_TYPE], "top_k": pool.top_k, "max_length": 120},
        "layers": layers,
        "neurons": {NEURON_TYPE: pool.neurons},
        "vectors": {"neuron_type": NEURON_TYPE, "faiss": spec, "sketch": Sketch(layers, pool.neurons, dim).as_dict()},
    }


def make_index(path: Path, stores: list[Path], pool: Pool, spec: str = DEFAULT_FAISS, dim: int = DEFAULT_DIM) -> float:
    """An index over ``stores`` (one shard each, linked, not copied) with ``spec`` vectors; returns their build seconds."""
    head = header(pool, spec, dim)
    sketch = Sketch.from_dict(head["vectors"]["sketch"])
    metas, seconds = [], 0.0
    for i, store_path in enumerate(stores):
        name = f"{i:05d}"
        shard = shards_dir(path) / name
        shard.mkdir(parents=True, exist_ok=True)
        if not (shard / CODES).exists():
            os.symlink(Path(store_path).absolute(), shard / CODES)
        with CodeStore(shard / CODES) as store:
            t = time.perf_counter()
            build_vectors(store, NEURON_TYPE, sketch, spec, shard / VECTORS)
            seconds += time.perf_counter() - t
            meta = {"name": name, **head, "documents": store.rows, "tokens": int(store.tokens().sum()), "files": [],
                    "text_field": "text", "id_field": "id", "skipped": 0}
        write_json(shard / SHARD_META, meta)
        metas.append(meta)
    write_manifest(path, manifest_for(metas, head))
    return seconds


# -- measurements -------------------------------------------------------------------

def recall(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    return float(np.mean([len(np.intersect1d(f, t)) / max(len(t), 1) for f, t in zip(found, truth)]))


def exact_picks(selector: Selector, profiles: Profiles, ks: list[int]) -> tuple[float, dict[int, list[np.ndarray]]]:
    """The exact scan's seconds (scoring, then the largest k's pick) and its top k rows per target, for each k."""
    index = selector.index
    t = time.perf_counter()
    distance = 1.0 - selector.similarities(profiles, NEURON_TYPE)
    for m in range(distance.shape[1]):
        pick(distance[:, m], index.ids_of, index.tokens, Budget(documents=max(ks)))
    seconds = time.perf_counter() - t
    return seconds, {k: [pick(distance[:, m], index.ids_of, index.tokens, Budget(documents=k)).rows
                         for m in range(distance.shape[1])] for k in ks}


def bench_vectors(path: Path, profiles: Profiles, ks: list[int], truth: dict[int, list[np.ndarray]],
                  oversample: int, nprobe: int | None) -> list[tuple[int, float, float, float, int]]:
    """Per k: (k, FAISS search seconds, approximate query seconds, recall, candidates scored)."""
    index = Index(path)
    approx = ApproxSearch(index)
    targets = len(profiles.names)
    approx.select(profiles, [Budget(documents=min(ks))] * targets, oversample, nprobe)   # maps the files in
    out = []
    for k in ks:
        t = time.perf_counter()
        approx.candidates(profiles, [oversample * k] * targets, nprobe)
        search = time.perf_counter() - t
        t = time.perf_counter()
        picks, _, scored = approx.select(profiles, [Budget(documents=k)] * targets, oversample, nprobe)
        out.append((k, search, time.perf_counter() - t, recall([p.rows for p in picks], truth[k]), scored))
    index.close()
    return out


def bench_size(docs: int, args) -> None:
    pool = Pool.make(args.seed)
    store = args.dir / f"codes-{docs}-seed{args.seed}.h5"
    if store.exists():
        print(f"reusing {store}")
    else:
        t = time.perf_counter()
        write_store(store, pool, docs)
        print(f"wrote {store} ({store.stat().st_size / 1e9:.1f} GB) in {time.perf_counter() - t:.0f} s")
    profiles = pool.profiles(args.topics)
    targets = len(args.topics)
    ks = [k for k in args.ks if k * args.oversample <= docs] or [min(args.ks)]

    specs = [DEFAULT_FAISS, args.ivf]
    built = {}
    for spec in specs:
        path = args.dir / f"index-{docs}-seed{args.seed}-{spec.replace(',', '_')}-d{args.dim}"
        vectors = shards_dir(path) / "00000" / VECTORS
        seconds = make_index(path, [store], pool, spec, args.dim) if not vectors.exists() else math.nan
        built[spec] = (path, seconds, vectors.stat().st_size / docs)

    selector = Selector(built[DEFAULT_FAISS][0])
    exact_picks(selector, profiles, ks[:1])      # compiles the kernels and warms the page cache
    exact_s, truth = exact_picks(selector, profiles, ks)
    selector.index.close()

    print(f"\n== {docs:,} documents, L={LAYERS} K={K} N={NEURONS}, {targets} targets (topics {args.topics}), "
          f"vectors of {args.dim} dims, oversample {args.oversample}, nprobe {args.nprobe or 'auto'}, "
          f"{faiss.omp_get_max_threads()} FAISS threads, {gpus()} FAISS GPUs")
    print(f"exact scan, all {targets} targets at once: {exact_s:.2f} s ({docs / exact_s:,.0f} docs/s)")
    print(f"{'index':<22} {'build s':>8} {'bytes/doc':>9} {'k':>8} {'search s':>9} {'query s':>8} "
          f"{'exact s':>8} {'speedup':>8} {'recall@k':>9} {'scored':>10}")
    for spec in specs:
        path, seconds, per_doc = built[spec]
        for k, search, query, rec, scored in bench_vectors(path, profiles, ks, truth, args.oversample, args.nprobe):
            print(f"{spec:<22} {seconds:>8.1f} {per_doc:>9.1f} {k:>8,} {search:>9.3f} {query:>8.3f} "
                  f"{exact_s:>8.2f} {exact_s / query:>7.1f}x {rec:>9.3f} {scored:>10,}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, nargs="+", default=[1_000_000], help="pool sizes to measure")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/nagfaiss"), help="where stores and indexes are kept")
    ap.add_argument("--ks", type=int, nargs="+", default=[1_000, 10_000, 100_000], help="documents selected per target")
    ap.add_argument("--topics", type=int, nargs="+", default=[0, 10, 100, 250], help="target topics (0 is the largest)")
    ap.add_argument("--ivf", default="IVF1024,PQ512x4fs", help="the IVF index compared with the flat default")
    ap.add_argument("--dim", type=int, default=DEFAULT_DIM, help="dimensions of the vectors")
    ap.add_argument("--oversample", type=int, default=DEFAULT_OVERSAMPLE)
    ap.add_argument("--nprobe", type=int, default=None, help="IVF lists visited [default: the query's own rule]")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    for docs in args.docs:
        bench_size(docs, args)


if __name__ == "__main__":
    main()
