"""Query throughput: exact scoring over a code store on disk.

Builds (once, then reuses) a synthetic store with the default backbone's shape
(L = 30 layers, K = 20 codes, N = 1536 neurons), then measures in one run:

- ``exact, 1 target`` and ``exact, 6 targets``: ``score_stream`` over
  ``CodeStore.iter_codes``, reading the file (from the page cache, where it
  fits in memory) while scoring, over the whole store and over its first
  documents;
- ``numpy gather``: the plain NumPy lookup-and-sum (``numpy_gather``) for the
  same tables over those first documents, already in memory (reading not
  counted), as the baseline; it must give the very same scores.

Wall and CPU seconds are both printed: on a shared machine other work slows
the first far more than the second.

The synthetic codes have the structure that matters to a table lookup: each
document is drawn around one of ~200 topics; a topic prefers, in every layer,
its own ordering of the neurons (topics share the commonest ones), and a
document takes K distinct neurons from near the front of that ordering, in
that order, as extraction stores them by descending impact. Targets are built
the way the paper's profiles are: counts over a few dozen documents of one
topic, so the tables hold integers and the kernel must match NumPy exactly.

    python -m tools.bench_query --docs 10000000 --dir /tmp/nagbench
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import time
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
from numba import njit, prange

from nagindex.atomic import atomic_path
from nagindex.errors import IndexStateError
from nagindex.indexdir import sha256_of
from nagindex.store import CodeStore, Rows, StoreWriter, id_checksums, row_checksums
from query.scoring import numpy_gather, score_stream
from query.scoring_torch import score_stream_torch

LAYERS, K, NEURONS = 30, 20, 1536
TOPICS = 200
NEURON_TYPE = "fwd_up"
WRITE_ROWS = 1 << 18
GAP_TABLE = 1 << 12


# -- the synthetic store ------------------------------------------------------

@dataclass(frozen=True)
class Corpus:
    """What the synthetic codes are drawn from; documents are a function of their row."""

    orders: np.ndarray   # uint16 [TOPICS, L, N]: each topic's neuron preference, per layer
    gaps: np.ndarray     # int64 [GAP_TABLE]: rank gaps between consecutive codes
    seed: int

    @classmethod
    def make(cls, seed: int) -> Corpus:
        rng = np.random.default_rng(seed)
        popularity = np.argsort(rng.random((LAYERS, NEURONS)), axis=1).argsort(axis=1)
        # A topic's order is the shared popularity order, strongly perturbed:
        # topics differ, yet the commonest neurons lead most of them.
        key = popularity[None] * 0.3 + rng.random((TOPICS, LAYERS, NEURONS)) * NEURONS
        orders = np.argsort(key, axis=2).astype(np.uint16)
        # Geometric gaps (mean ~3.3), capped so that K ranks always fit in N.
        q = (np.arange(GAP_TABLE) + 0.5) / GAP_TABLE
        gaps = np.minimum(1 + np.floor(np.log1p(-q) / np.log1p(-0.3)), NEURONS // K).astype(np.int64)
        return cls(orders, gaps, seed)

    def codes(self, first_row: int, n: int, topic: int = -1) -> np.ndarray:
        out = np.empty((n, LAYERS, K), np.uint16)
        _fill(out, first_row, self.orders, self.gaps, self.seed, topic)
        return out


@njit(parallel=True, cache=True)
def _fill(out, first_row, orders, gaps, seed, topic):
    """Documents ``first_row ..``: a hash of the row seeds each, so blocks are independent."""
    topics = orders.shape[0]
    mask = np.uint64(gaps.shape[0] - 1)
    for i in prange(out.shape[0]):
        x = np.uint64(first_row + i) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed)
        x ^= x >> np.uint64(31)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(29)
        t = topic if topic >= 0 else np.int64(x % np.uint64(topics))
        for layer in range(out.shape[1]):
            rank = -1
            for k in range(out.shape[2]):
                x ^= x << np.uint64(13)
                x ^= x >> np.uint64(7)
                x ^= x << np.uint64(17)
                rank += gaps[x & mask]
                out[i, layer, k] = orders[t, layer, rank]


def synthetic_store(directory: Path, docs: int, seed: int) -> tuple[Path, Corpus]:
    """The store for ``docs`` documents under ``directory``, written unless already there."""
    corpus = Corpus.make(seed)
    path = directory / f"codes-{docs}-seed{seed}.h5"
    if path.exists():
        with contextlib.suppress(IndexStateError), CodeStore(path) as store:     # else a store of an older layout
            if store.rows == docs and store.code_shape(NEURON_TYPE) == (docs, LAYERS, K):
                print(f"reusing {path}")
                return path, corpus
    directory.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    with atomic_path(path) as tmp, StoreWriter(tmp, docs, {NEURON_TYPE: NEURONS}) as out:
        for start in range(0, docs, WRITE_ROWS):
            rows = np.arange(start, min(docs, start + WRITE_ROWS))
            out.write(start, Rows(ids=np.char.add("doc-", rows.astype(str)).tolist(), tokens=120 + rows % 800,
                                  source_file=np.zeros(len(rows), np.uint32), source_offset=rows,
                                  codes={NEURON_TYPE: corpus.codes(start, len(rows))}))
    print(f"wrote {path} ({path.stat().st_size / 1e9:.1f} GB) in {time.perf_counter() - t:.0f} s")
    return path, corpus


def target_tables(corpus: Corpus, targets: int, examples: int = 50) -> np.ndarray:
    """``[L, N, targets]`` float32 counts: target m is ``examples`` documents of topic m."""
    table = np.zeros((LAYERS, NEURONS, targets), np.float32)
    for m in range(targets):
        # Rows far past any pool: held-out examples of the topic.
        codes = corpus.codes(1 << 40, examples, topic=m).astype(np.int64)
        slots = codes + (np.arange(LAYERS) * NEURONS)[None, :, None]
        table[:, :, m] = np.bincount(slots.ravel(), minlength=LAYERS * NEURONS).reshape(LAYERS, NEURONS)
    return table


# -- measurements ---------------------------------------------------------------

@dataclass
class Row:
    method: str
    docs: int
    seconds: float
    cpu_seconds: float
    note: str

    @property
    def rate(self) -> float:
        return self.docs / self.seconds


@dataclass
class Section:
    """One measured part of the benchmark: its rows and the ratios that sum it up."""

    title: str
    rows: list[Row]
    summary: list[str]


class Timer:
    """Wall and CPU time of a block: on a shared machine the two tell contention apart."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def head_chunks(store: CodeStore, docs: int, chunk_rows: int):
    """``iter_codes`` cut at ``docs`` rows."""
    for first_row, codes in store.iter_codes(NEURON_TYPE, chunk_rows):
        if first_row >= docs:
            return
        yield first_row, codes[:docs - first_row]


def scan(path: Path, table: np.ndarray, docs: int, chunk_rows: int, device: str = "cpu",
         verify: bool = True) -> tuple[np.ndarray, Timer]:
    scorer = score_stream if device == "cpu" else functools.partial(score_stream_torch, device=device)
    with CodeStore(path, verify=verify) as store, Timer() as timer:
        scores = scorer(head_chunks(store, docs, chunk_rows), docs, table, np.arange(LAYERS), K)
    return scores, timer


def fastest_scan(path: Path, table: np.ndarray, docs: int, args, verify: bool = True) -> tuple[np.ndarray, Timer]:
    return min((scan(path, table, docs, args.chunk_rows, args.device, verify) for _ in range(args.repeats)),
               key=lambda r: r[1].wall)


def gather(codes: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, Timer]:
    with Timer() as timer:
        scores = numpy_gather(codes, table, np.arange(LAYERS), K)
    return scores, timer


def bench_exact(path: Path, corpus: Corpus, args) -> Section:
    """The exact scan for one and for several targets, against the NumPy baseline.

    The scan is timed over the whole store and over the documents the baseline
    gets, which, being the first, stay in the page cache even when the whole
    store does not fit.
    """
    tables = target_tables(corpus, args.targets)
    one, many = np.ascontiguousarray(tables[:, :, :1]), tables
    with CodeStore(path) as store:
        docs = store.rows
        head = store.read_codes(NEURON_TYPE, 0, min(args.gather_docs, docs))
    scan(path, one, docs, args.chunk_rows, args.device)  # compiles the kernels and warms the page cache
    one_all, many_all = fastest_scan(path, one, docs, args)[1], fastest_scan(path, many, docs, args)[1]
    (one_scores, one_head), (many_scores, many_head) = (fastest_scan(path, t, len(head), args) for t in (one, many))
    one_ref, one_gather = gather(head, one)
    many_ref, many_gather = gather(head, many)
    if not (np.array_equal(one_ref, one_scores) and np.array_equal(many_ref, many_scores)):
        raise SystemExit("the kernel's scores differ from numpy_gather's")

    m, n = args.targets, len(head)
    store_note = f"read from the store, chunks of {args.chunk_rows:,}"
    head_note = f"first {n:,} docs, read from the store"
    gather_note = f"first {n:,} docs, in memory (reading not counted)"
    rows = [
        Row("exact, 1 target", docs, one_all.wall, one_all.cpu, store_note),
        Row(f"exact, {m} targets", docs, many_all.wall, many_all.cpu, store_note),
        Row("exact, 1 target", n, one_head.wall, one_head.cpu, head_note),
        Row(f"exact, {m} targets", n, many_head.wall, many_head.cpu, head_note),
        Row("numpy gather, 1 target", n, one_gather.wall, one_gather.cpu, gather_note),
        Row(f"numpy gather, {m} targets", n, many_gather.wall, many_gather.cpu, gather_note),
    ]
    return Section("exact scoring", rows, [
        f"scores identical to numpy_gather's on the first {n:,} documents",
        (f"speedup over numpy gather, whole store: {rows[0].rate / rows[4].rate:.1f}x with 1 target, "
         f"{rows[1].rate / rows[5].rate:.1f}x with {m}; first {n:,} docs: "
         f"{rows[2].rate / rows[4].rate:.1f}x and {rows[3].rate / rows[5].rate:.1f}x"),
        (f"{m}-target time / 1-target time: {many_all.wall / one_all.wall:.2f}x whole store, "
         f"{many_head.wall / one_head.wall:.2f}x first {n:,} docs"),
    ])


def bench_checks(path: Path, corpus: Corpus, args) -> Section:
    """What checking costs: the scan with and without the codes' row checksums, and the checks a
    build adds when it writes a store (row checksums, id CRCs, the file's sha256)."""
    one = np.ascontiguousarray(target_tables(corpus, 1))
    with CodeStore(path) as store:
        docs = store.rows
    scan(path, one, docs, args.chunk_rows, args.device)      # warms the page cache
    plain_scores, plain = fastest_scan(path, one, docs, args, verify=False)
    checked_scores, checked = fastest_scan(path, one, docs, args, verify=True)
    assert np.array_equal(plain_scores, checked_scores)
    with CodeStore(path, verify=False) as store, Timer() as rows_timer:
        for _, codes in store.iter_codes(NEURON_TYPE, args.chunk_rows):
            row_checksums(codes)
        ids = store.ids()
    with Timer() as ids_timer:
        id_checksums(ids)
    with Timer() as sha_timer:
        sha256_of(path)
    build = rows_timer.wall + ids_timer.wall + sha_timer.wall
    rows = [Row("exact scan, unchecked", docs, plain.wall, plain.cpu, "CodeStore(verify=False)"),
            Row("exact scan, checked", docs, checked.wall, checked.cpu, "every row's checksum compared"),
            Row("checks a build adds", docs, build, build, f"row checksums (with reading) {rows_timer.wall:.2f} s, "
                f"id CRCs {ids_timer.wall:.2f} s, sha256 of the file {sha_timer.wall:.2f} s")]
    return Section("checks", rows, [
        f"checked scan / unchecked scan: {checked.wall / plain.wall:.2f}x wall, {checked.cpu / plain.cpu:.2f}x cpu",
        f"checks at build: {build / docs * 1e6:.1f} s per 10^6 documents"])


def report(section: Section) -> None:
    print(f"\n== {section.title}")
    print(f"{'method':<26} {'docs':>11} {'seconds':>8} {'cpu s':>8} {'docs/s':>11}  note")
    for r in section.rows:
        print(f"{r.method:<26} {r.docs:>11,} {r.seconds:>8.3f} {r.cpu_seconds:>8.3f} {r.rate:>11,.0f}  {r.note}")
    for line in section.summary:
        print(f"  {line}")


def memory_note(path: Path) -> str:
    """The store's size against the memory left for the page cache, which the figures assume."""
    note = f"store {path.stat().st_size / 1e9:.1f} GB"
    try:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return note
    return f"{note}, {available / 1e9:.1f} GB of memory available to the page cache"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=1_000_000, help="documents in the synthetic store")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/nagbench"), help="where the store is kept")
    ap.add_argument("--targets", type=int, default=6, help="targets scored together in the multi-target run")
    ap.add_argument("--chunk-rows", type=int, default=16384,
                    help="documents per read; 16,384 (20 MB) stays under glibc's 32 MB mmap threshold, so read "
                         "buffers are reused instead of being mapped and faulted in afresh")
    ap.add_argument("--gather-docs", type=int, default=1_000_000, help="documents for the NumPy baseline")
    ap.add_argument("--repeats", type=int, default=3, help="timed scans per measurement; the fastest counts")
    ap.add_argument("--threads", type=int, default=None, help="numba threads (default: all cores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu (the numba kernel) or a torch device such as cuda")
    args = ap.parse_args()
    if args.threads:
        numba.set_num_threads(args.threads)
    path, corpus = synthetic_store(args.dir, args.docs, args.seed)
    threads = numba.get_num_threads()
    print(f"{args.docs:,} documents, L={LAYERS} K={K} N={NEURONS}; {memory_note(path)}")
    print(f"score_stream scores on {max(1, threads - 1)} numba thread(s) and reads on another")
    for section in (bench_exact(path, corpus, args), bench_checks(path, corpus, args)):
        report(section)


if __name__ == "__main__":
    main()
