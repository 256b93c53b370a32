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
neurons; the pool here is nagindex.synthetic's, fitted to the statistics of
real NAGs. Targets are 64 held-out documents of one topic each, topics of
different sizes, with the paper's count weighting.

    python -m tools.bench_faiss --docs 1000000 3000000 --dir /tmp/nagfaiss
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import faiss
import numpy as np

from indexer.synthetic import make_index
from nagindex.faiss_index import gpus
from nagindex.index import Index
from nagindex.indexdir import IndexDir
from nagindex.sketch import DEFAULT_DIM, DEFAULT_FAISS
from nagindex.synthetic import K, LAYERS, NEURON_TYPE, NEURONS, Pool, write_store
from query.approx import DEFAULT_OVERSAMPLE, ApproxSearch
from query.budget import Budget
from query.profile import Profiles, ScoreSpec, build_profiles
from query.select import pick
from query.selector import Selector


def profiles_of(pool: Pool, topics: list[int], examples: int = 64) -> Profiles:
    """The paper's profiles of ``examples`` held-out documents of each topic."""
    groups = {f"topic-{t}": pool.codes((1 << 40) + t * examples, examples, topic=t) for t in topics}
    return build_profiles(groups, pool.neurons, pool.always.shape[0], pool.top_k, ScoreSpec())


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
    profiles = profiles_of(pool, args.topics)
    targets = len(args.topics)
    ks = [k for k in args.ks if k * args.oversample <= docs] or [min(args.ks)]

    specs = [DEFAULT_FAISS, args.ivf]
    built = {}
    for spec in specs:
        path = args.dir / f"index-{docs}-seed{args.seed}-{spec.replace(',', '_')}-d{args.dim}"
        reuse = IndexDir(path).manifest_path.exists()
        seconds = make_index(path, [store], pool, spec, args.dim) if not reuse else math.nan
        built[spec] = (path, seconds, Index(path).shards[0].dir.vectors.stat().st_size / docs)

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
