"""Bytes a document and exact-scan speed of the two code layouts (docs/design.md §2.1), in one run.

The same documents are written twice, as an ``ordered`` store (uint16 ids in
impact order) and as a ``sets`` store (a bitset over each layer's 64 commonest
neurons, the others listed), then scanned in turn, one layout after the other
``--repeats`` times, for one target and for ``--targets``; the fastest scan of
each counts, and both layouts must give the very same scores.

Where the documents come from decides the sets store's size, so there are two
sources: ``--index`` repeats a real index's codes up to ``--docs`` rows (their
neurons are as concentrated as real text makes them), and ``synthetic`` draws
them from nagindex.synthetic's mixture (less concentrated than any real pool
measured: a harder case for the sets layout). Targets are the slot counts of
50 documents each, so the tables hold integers and scores must match exactly.

    python -m tools.bench_codes --docs 2000000 --index my.index --dir /tmp/nagcodes
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from nagindex.atomic import atomic_path
from nagindex.index import Index
from nagindex.store import CHUNK_ROWS, ORDERED, SETS, CodeStore, Rows, StoreWriter, slot_counts_of
from nagindex.synthetic import NEURON_TYPE, Pool
from query.scoring import score_stream

WRITE_ROWS = 1 << 16
EXAMPLES = 50


def source_codes(args) -> dict[str, tuple[np.ndarray | Pool, int]]:
    """Each source by name: its codes (a real index's, to repeat) or the synthetic pool, and N."""
    sources: dict[str, tuple[np.ndarray | Pool, int]] = {"synthetic": (Pool.make(args.seed), Pool.make(args.seed).neurons)}
    for path in args.index:
        index = Index(path)
        neuron_type = index.neuron_types[0]
        codes = np.concatenate([c for _, c in index.iter_codes(neuron_type)])
        sources[f"real: {Path(path).resolve()}"] = (codes, index.neurons[neuron_type])
    return sources


def rows_of(source: np.ndarray | Pool, start: int, n: int) -> np.ndarray:
    if isinstance(source, Pool):
        return source.codes(start, n)
    return source[np.arange(start, start + n) % len(source)]


def write(path: Path, source, neurons: int, docs: int, layout: str) -> Path:
    """The store at ``path``, written unless it is there already (with ``docs`` rows)."""
    if path.exists():
        with CodeStore(path) as store:
            if store.rows == docs and store.layout == layout:
                return path
    with atomic_path(path) as tmp, StoreWriter(tmp, docs, {NEURON_TYPE: neurons}, layout) as out:
        for start in range(0, docs, WRITE_ROWS):
            n = min(WRITE_ROWS, docs - start)
            rows = np.arange(start, start + n)
            out.write(start, Rows(ids=np.char.add("doc-", rows.astype(str)).tolist(), tokens=120 + rows % 800,
                                  source_file=np.zeros(n, np.uint32), source_offset=rows,
                                  codes={NEURON_TYPE: rows_of(source, start, n)}))
    return path


def tables(source, neurons: int, targets: int, seed: int) -> np.ndarray:
    """float32 ``[L, N, targets]``: the slot counts of ``EXAMPLES`` documents each."""
    rng = np.random.default_rng(seed)
    if isinstance(source, Pool):
        groups = [source.codes((1 << 40) + 100 * t, EXAMPLES, topic=t) for t in range(targets)]
    else:
        groups = [source[rng.choice(len(source), EXAMPLES, replace=False)] for _ in range(targets)]
    return np.stack([slot_counts_of(g, neurons) for g in groups], axis=2).astype(np.float32)


def code_bytes(path: Path) -> float:
    """Bytes a document of the codes as stored, with their uint32 row checksum."""
    with CodeStore(path) as store:
        sizes = store.stored_bytes()
        return (sizes.get("codes", 0) + sizes.get("sets", 0)) / store.rows + 4


def scan(path: Path, table: np.ndarray) -> tuple[np.ndarray, float]:
    with CodeStore(path) as store:
        layers = np.arange(store.code_shape(NEURON_TYPE)[1])
        t = time.perf_counter()
        scores = score_stream(store.iter_stored(NEURON_TYPE), store.rows, table, layers, store.code_shape(NEURON_TYPE)[2])
        return scores, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=2_000_000, help="documents in each store")
    ap.add_argument("--index", action="append", default=[], help="a real index whose codes to repeat (repeatable)")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/nagcodes"))
    ap.add_argument("--targets", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    print(f"{args.docs:,} documents a store, chunks of {4 * CHUNK_ROWS:,} rows, repeats {args.repeats}")
    for name, (source, neurons) in source_codes(args).items():
        slug = name.replace(": ", "-").replace("/", "_").strip("_")
        paths = {layout: write(args.dir / f"{slug}-{layout}.h5", source, neurons, args.docs, layout)
                 for layout in (ORDERED, SETS)}
        print(f"\n== {name}")
        sizes = {layout: code_bytes(p) for layout, p in paths.items()}
        print(f"code bytes a document: ordered {sizes[ORDERED]:,.0f}, sets {sizes[SETS]:,.0f} "
              f"({sizes[SETS] / sizes[ORDERED]:.2f}x)")
        for m in (1, args.targets):
            table = np.ascontiguousarray(tables(source, neurons, m, args.seed))
            best = {layout: np.inf for layout in paths}
            scores = {}
            scan(paths[SETS], table)   # compiles the kernels and warms the page cache
            for _ in range(args.repeats):
                for layout, p in paths.items():
                    scores[layout], seconds = scan(p, table)
                    best[layout] = min(best[layout], seconds)
            if not np.array_equal(scores[ORDERED], scores[SETS]):
                raise SystemExit(f"{name}: the two layouts' scores differ")
            rate = {layout: args.docs / s for layout, s in best.items()}
            print(f"{m} target{'s' if m > 1 else ''}: ordered {rate[ORDERED]:,.0f} docs/s, sets {rate[SETS]:,.0f} "
                  f"docs/s, sets / ordered {rate[SETS] / rate[ORDERED]:.2f}x (scores identical)")


if __name__ == "__main__":
    main()
