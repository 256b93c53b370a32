"""The exact query over a sharded index: one process, and one or two Ray workers on this machine.

Builds (once, then reuses, under ``--dir``) an index of ``--shards`` synthetic
shards of ``--shard-docs`` documents each (nagindex.synthetic: the default
backbone's shape, no FAISS vectors) and the six synthetic targets of
tools.bench_selection, reads the codes once so that the page cache serves every
run alike, then selects ``--fraction`` of the pool's tokens with the paper's
weighting, each way in its own process:

- ``local``: ``Selector.select(search="exact")``, the shards scanned one after
  the other, the numba kernel and a reading thread sharing the cores
  (docs/design.md §4.1);
- ``ray, 1 worker`` and ``ray, 2 workers``: ``--engine ray`` on a Ray cluster
  started in that process with ``num_cpus`` 1 and 2, one task a shard
  (docs/design.md §4.4).

Each way queries twice and the second query is timed: the first compiles the
kernels (and starts Ray's workers, which compile their own).

All three must select the same documents in the same order with the same
similarities. Printed: wall seconds, documents scanned per second, and the
speed-up of two workers over one, measured in this run. These are the
per-shard costs that the cost curve of docs/design.md §5.2 is computed from.

    python -m tools.bench_workers --shards 4 --shard-docs 500000 --dir /tmp/nagworkers
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pyarrow.feather as feather

from indexer.synthetic import make_index
from nagindex.progress import showing
from nagindex.synthetic import Pool, write_store
from query.budget import Budget

from .bench_selection import EXAMPLES, TARGET_TOPICS, _holds, measure_each, peak_resident, synthetic_selector, warm

WAYS = {"local": None, "ray-1": 1, "ray-2": 2}
LABELS = {"local": "local, one process", "ray-1": "ray, 1 worker", "ray-2": "ray, 2 workers"}


def sharded_index(directory: Path, shards: int, shard_docs: int, seed: int) -> tuple[Path, Path]:
    """The index of ``shards`` synthetic shards and the targets' codes under ``directory``, written unless there."""
    directory.mkdir(parents=True, exist_ok=True)
    pool = Pool.make(seed)
    stores = [directory / f"codes-{shard_docs}-part{i}-seed{seed}.h5" for i in range(shards)]
    for i, store in enumerate(stores):
        if not _holds(store, shard_docs):
            write_store(store, pool, shard_docs, first_row=i * shard_docs)
    index = directory / f"pool-{shards}x{shard_docs}-seed{seed}.index"
    if not (index / "manifest.json").exists():
        make_index(index, stores, pool, spec=None)
    targets = directory / f"targets-seed{seed}.npy"
    if not targets.exists():
        np.save(targets, np.concatenate([pool.codes((1 << 40) + 100 * t, EXAMPLES, topic=t) for t in TARGET_TOPICS]))
    return index, targets


def select_in_process(way: str, index: Path, target_codes: Path, fraction: float, out: Path) -> None:
    """Select the ``way`` named, write the selection to ``out`` and print its figures as JSON."""
    workers = WAYS[way]
    if workers is not None:
        import ray
        ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR")
    selector, targets = synthetic_selector(index, target_codes, "local" if workers is None else "ray")
    budget = Budget(fraction=fraction)
    selector.select(targets, budget, search="exact")          # kernels compiled, Ray's workers started
    wall = time.perf_counter()
    table = selector.select(targets, budget, search="exact").table.select(["id", "target", "similarity"])
    wall = time.perf_counter() - wall
    feather.write_feather(table, out)
    print(json.dumps({"wall": wall, "peak_mb": peak_resident() / 2**20}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shards", type=int, default=4, help="shards in the synthetic index")
    ap.add_argument("--shard-docs", type=int, default=500_000, help="documents a shard")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/nagworkers"), help="where the index is kept")
    ap.add_argument("--fraction", type=float, default=0.2, help="share of the pool's tokens selected")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run", choices=sorted(WAYS), help=argparse.SUPPRESS)
    ap.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--target-codes", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        with showing(False):
            select_in_process(args.run, args.index, args.target_codes, args.fraction, args.out)
        return
    index, target_codes = sharded_index(args.dir, args.shards, args.shard_docs, args.seed)
    warm(index)
    docs = args.shards * args.shard_docs
    print(f"{docs:,} documents in {args.shards} shards, {len(TARGET_TOPICS)} targets, --fraction {args.fraction:g}, "
          f"{os.cpu_count()} cores")
    print(f"{'way':<20} {'wall s':>8} {'docs/s':>11} {'peak MB':>9}")
    figures, tables = {}, {}
    for way, f, tables[way] in measure_each(WAYS, index, target_codes, args.fraction, args.dir, "tools.bench_workers"):
        figures[way] = f
        print(f"{LABELS[way]:<20} {f['wall']:>8.1f} {docs / f['wall']:>11,.0f} {f['peak_mb']:>9,.0f}", flush=True)
    if not all(t.equals(tables["local"]) for t in tables.values()):
        raise SystemExit("the ways selected different documents")
    print(f"  same selection, same order, same similarities: {len(tables['local']):,} documents")
    print(f"  2 workers / 1 worker: {figures['ray-1']['wall'] / figures['ray-2']['wall']:.2f}x the speed; "
          f"local / ray 1 worker: {figures['ray-1']['wall'] / figures['local']['wall']:.2f}x")


if __name__ == "__main__":
    main()
