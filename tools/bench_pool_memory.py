"""Peak memory per process of reading an index, as the pool grows: it should not grow with it.

Synthetic indexes (nagindex.synthetic: the default backbone's shape, no FAISS
vectors) of 10^6, 3x10^6 and 10^7 documents in shards of ``--shard-docs``
documents (10^6: a shard as one worker of a ``build --shard i/N`` writes it),
kept under ``--dir`` and sharing their stores (hard links). Each operation
runs in its own process, and its peak is the kernel's high-water mark of that
process's memory (``VmHWM``):

- ``open``: what a query reads before it scans: the index opened, the
  targets' profiles built and the pool's token total (``Index.total_tokens``;
  code without it sums every document's tokens, as queries did);
- ``query``: ``Selector.select(search="exact")`` of ``--select`` documents
  for six targets, or with ``--fraction`` a share of the pool's tokens (a token
  budget, which reads the token counts of the rows a target keeps as it
  scans): the streaming selection, docs/design.md §4.2;
- ``merge``: ``nagindex merge`` of the same shards as ``--shard i/N`` parts;
- ``verify``: ``nagindex verify``, every byte read;
- ``append``: the duplicate-id check of ``build --append``: one id the index
  holds and one it does not looked up in it (``Index.holders``; code before
  it holds every id's hash, ``KnownIds``).

With ``--before DIR`` (a checkout of an earlier nagindex) each operation also
runs with that code, and the queries of both must select the same documents,
in the same order, with the same similarities. The curve ends with the ratio
of the peak at the largest pool to the one at the smallest and, where it
grows, the bytes per document it grows by.

    python -m tools.bench_memory --pool --before /tmp/before --dir /tmp/nagmem
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

OPS = ("open", "query", "merge", "verify", "append")
SIZES = (1_000_000, 3_000_000, 10_000_000)


# -- one operation, in its own process (imports from the code measured) -----------------

def run_op(op: str, index: Path, target_codes: Path, select: int, fraction: float, out: Path) -> None:
    """Run ``op`` on ``index`` and print its seconds and peak as JSON (``fraction`` 0: a budget of ``select`` documents)."""
    from tools.bench_selection import peak_resident, synthetic_selector

    started = time.perf_counter()
    if op in ("open", "query"):
        import pyarrow.feather as feather
        from query.budget import Budget

        selector, targets = synthetic_selector(index, target_codes)
        if op == "open":
            selector.profiles(targets)
            pool = selector.index
            tokens = pool.total_tokens if hasattr(pool, "total_tokens") else int(pool.tokens.sum())
            assert tokens > 0
        else:
            budget = Budget(fraction=fraction) if fraction else Budget(documents=select)
            table = selector.select(targets, budget, search="exact").table
            feather.write_feather(table.select(["id", "target", "similarity"]), out)
    elif op == "merge":
        from indexer.merge import merge

        merge(index)
    elif op == "verify":
        from nagindex.verify import verify

        report = verify(index)
        if not report.ok:
            raise SystemExit("; ".join(report.problems))
    else:
        from nagindex.index import Index

        pool = Index(index)
        if hasattr(pool, "holders"):        # each shard's sorted id hashes in turn
            held = set(pool.holders(["doc-0", "not-an-indexed-id"]))
        else:                               # code before them: every id's hash in memory
            from nagindex.index import KnownIds

            known = KnownIds(pool, "the index")
            held = {i for i in ("doc-0", "not-an-indexed-id") if known.get(i) is not None}
        if held != {"doc-0"}:
            raise SystemExit("the duplicate-id check got an id wrong")
    print(json.dumps({"seconds": time.perf_counter() - started, "peak_mb": peak_resident() / 2**20}))


def measure(code: Path, op: str, index: Path, target_codes: Path, select: int, fraction: float, out: Path) -> dict:
    """``run_op`` in a process of its own, with ``code`` on the path."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--run", op, "--index", str(index),
           "--target-codes", str(target_codes), "--select", str(select), "--fraction", str(fraction), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(code)}
    proc = subprocess.run(cmd, cwd=code, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise SystemExit(f"{op} on {index} with {code}: exit {proc.returncode}: {err[-1] if err else ''}")
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


# -- the pools ---------------------------------------------------------------------

def pools(directory: Path, sizes: list[int], shard_docs: int, seed: int = 0) -> dict[int, tuple[Path, Path]]:
    """``size -> (index, unmerged parts)`` over shared stores of ``shard_docs`` documents, written unless there."""
    from indexer.synthetic import make_index
    from nagindex.synthetic import Pool, write_store

    pool = Pool.make(seed)
    directory.mkdir(parents=True, exist_ok=True)
    stores = []
    for i in range(-(-max(sizes) // shard_docs)):
        stores.append(directory / f"codes-{i:05d}.h5")
        if not stores[-1].exists():
            write_store(stores[-1], pool, shard_docs, i * shard_docs)
    out = {}
    for n in sizes:
        index, parts = directory / f"pool-{n}.index", directory / f"parts-{n}.index"
        if not (index / "manifest.json").exists():
            shutil.rmtree(index, ignore_errors=True)
            make_index(index, stores[: n // shard_docs], pool, spec=None)
        if not (parts / "shards").exists():
            make_index(parts, stores[: n // shard_docs], pool, spec=None, parts=True)
        out[n] = index, parts
    return out


def target_codes(directory: Path, seed: int = 0) -> Path:
    """The six targets' held-out examples, as tools.bench_selection draws them."""
    import numpy as np
    from tools.bench_selection import EXAMPLES, TARGET_TOPICS
    from nagindex.synthetic import Pool

    path = directory / "targets.npy"
    if not path.exists():
        pool = Pool.make(seed)
        np.save(path, np.concatenate([pool.codes((1 << 40) + 100 * t, EXAMPLES, topic=t) for t in TARGET_TOPICS]))
    return path


def _compared(directory: Path, n: int) -> str:
    """Whether the two codes' queries of the pool of ``n`` selected the same, where both ran."""
    import pyarrow.feather as feather

    tables = [directory / f"selected-{name}-{n}.arrow" for name in ("before", "after")]
    if not all(t.exists() for t in tables):
        return ""
    if feather.read_table(tables[0]).equals(feather.read_table(tables[1])):
        return "  same selection as before"
    raise SystemExit(f"the queries of the pool of {n:,} documents selected differently before and after")


def main(argv: list[str], before: Path | None) -> None:
    ap = argparse.ArgumentParser(prog="tools.bench_memory --pool", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/nagmem"), help="where the synthetic indexes are kept")
    ap.add_argument("--sizes", type=lambda s: [int(float(x)) for x in s.split(",")], default=list(SIZES),
                    help="pool sizes, in documents (comma-separated)")
    ap.add_argument("--shard-docs", type=int, default=1_000_000, help="documents a shard")
    ap.add_argument("--select", type=int, default=30_000, help="documents the query selects, all targets together")
    ap.add_argument("--ops", default=",".join(OPS), help="operations to measure (comma-separated)")
    ap.add_argument("--fraction", type=float, default=0.0,
                    help="the query selects this share of the pool's tokens instead (a token budget)")
    ap.add_argument("--only", choices=("before", "after"), help="run one code only (the other's selections, "
                    "kept under --dir by an earlier run, are still compared)")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic indexes afterwards")
    args = ap.parse_args(argv)
    ops = args.ops.split(",")
    codes = ([("before", before)] if before else []) + [("after", Path(__file__).resolve().parents[1])]
    codes = [(name, code) for name, code in codes if args.only in (None, name)]
    built, targets = pools(args.dir, args.sizes, args.shard_docs), target_codes(args.dir)
    print(f"{'operation':<10}{'documents':>12}" + "".join(f"{name + ' MB':>12}{name + ' s':>10}" for name, _ in codes),
          flush=True)
    peaks: dict[tuple[str, str], dict[int, float]] = {}
    for n in args.sizes:
        index, parts = built[n]
        for op in ops:
            row = []
            for name, code in codes:
                out = args.dir / f"selected-{name}-{n}.arrow"
                f = measure(code, op, parts if op == "merge" else index, targets, args.select, args.fraction, out)
                if op == "merge":
                    (parts / "manifest.json").unlink()      # unmerged again, for the next run
                peaks.setdefault((op, name), {})[n] = f["peak_mb"]
                row.append(f"{f['peak_mb']:>12,.0f}{f['seconds']:>10.1f}")
            print(f"{op:<10}{n:>12,}{''.join(row)}{_compared(args.dir, n) if op == 'query' else ''}", flush=True)
    small, large = min(args.sizes), max(args.sizes)
    if small < large:
        print(f"\npeak at {large:,} / peak at {small:,} documents, and the growth per document between them:")
    for (op, name), at in peaks.items():
        if small == large or small not in at or large not in at:
            continue
        grows = (at[large] - at[small]) * 2**20 / (large - small)
        print(f"  {op:<8} {name:<7} {at[large] / at[small]:.2f}x  {grows:+.1f} bytes/document", flush=True)
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    for flag in ("--run", "--index", "--target-codes", "--out"):
        ap.add_argument(flag, required=True)
    ap.add_argument("--select", type=int, required=True)
    ap.add_argument("--fraction", type=float, required=True)
    a = ap.parse_args()
    run_op(a.run, Path(a.index), Path(a.target_codes), a.select, a.fraction, Path(a.out))
