"""Peak memory and time of selecting a share of the pool (``query --fraction 0.2``), every score held or streamed.

Builds (once, then reuses, under ``--dir``) an index of synthetic documents with
the default backbone's shape (nagindex.synthetic: 30 layers, K = 20, 1536
neurons, 50 to 449 tokens a document) and no FAISS vectors, as the exact scan
needs none and sketching 10^7 documents takes longer than what is measured.
The targets are six topics, each 30 held-out documents of its topic. Then
each way of selecting runs in its own process, so that its peak resident
memory is its own (the kernel's high-water mark of the process's memory,
``VmHWM``: ``ru_maxrss`` would carry the parent's over the ``exec``):

- ``open``: the index opened, its token counts read and the targets' profiles
  built, what both ways share;
- ``every score``: the selection as it was made before streaming, and as
  ``Selector.select`` still makes it where it must keep every score
  (``--quality-field``, ``--dedup``): ``Selector.similarities``, the float64
  similarity of every document to every target, then ``query.select.pick``
  over each target's column;
- ``streaming``: ``Selector.select(search="exact")``, which keeps per target
  only what can still be selected (docs/design.md §4.2).

With ``--auto``, the same index instead times, in this one process, what
``--weighting auto`` adds before the scan (docs/design.md §1.3: the pool
samples read, every candidate built on held-out folds and judged, the chosen
tables built) against the streaming exact scan of the paper's weighting, and
prints each target's choice. With ``--terms`` as well, the index also keeps term
statistics of synthetic texts (Zipf-distributed words, a quarter of each
document's from its topic's own; the targets' examples alike), so that the
BM25 fusions are candidates (docs/design.md §2.4): the choice is timed with
and without them, and the whole query (the choice and the scan of what was
chosen) against the scan of the paper's weighting.

Both must select the very same documents in the same order, with the same
similarities; the store is read once beforehand so that neither pays for a
cold page cache. Seconds are those of the selection within its process (the
interpreter's start and the imports apart); wall and CPU seconds are both
printed, as on a shared machine other work slows the first far more than the
second.

    python -m tools.bench_selection --docs 10000000 --dir /tmp/nagselect
    python -m tools.bench_selection --docs 10000000 --dir /tmp/nagselect --auto
    python -m tools.bench_selection --docs 200000 --dir /tmp/nagselect --auto --terms
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

from indexer.synthetic import make_index
from nagindex.errors import IndexStateError
from nagindex.index import Index
from nagindex.store import CodeStore
from nagindex.synthetic import NEURON_TYPE, Pool, write_store
from nagindex.terms import Counts, write_shard
from query.budget import Budget
from query.profile import ScoreSpec
from query.select import pick, pick_each
from query.selector import Selector
from query.targets import Targets

TARGET_TOPICS = (0, 7, 25, 60, 120, 250)
EXAMPLES = 30
RUNS = {"open": "index opened, profiles built", "every": "every score held, then pick per target",
        "stream": "Selector.select(search='exact')"}
LABELS = {"open": "open", "every": "every score", "stream": "streaming"}
WORDS, TOPIC_WORDS, TEXT_WORDS = 50_000, 200, 60     # synthetic texts: vocabulary, a topic's own words, words a text
TOPICS = 300


# -- what is selected from --------------------------------------------------------

def synthetic_texts(rng: np.random.Generator, topics: np.ndarray) -> list[str]:
    """One text per topic of ``topics``: Zipf-distributed words, a quarter of them its topic's own."""
    ranks = np.minimum(rng.zipf(1.3, (len(topics), TEXT_WORDS)), WORDS)
    own = rng.integers(0, TOPIC_WORDS, (len(topics), TEXT_WORDS // 4))
    return [" ".join([f"w{r}" for r in row] + [f"t{t}x{k}" for k in mine]) for row, mine, t in zip(ranks, own, topics)]


def target_texts(seed: int) -> dict[str, list[str]]:
    rng = np.random.default_rng([seed, 3])
    return {f"topic-{t}": synthetic_texts(rng, np.full(EXAMPLES, t)) for t in TARGET_TOPICS}


def synthetic_terms(path: Path, docs: int, seed: int) -> None:
    """Term statistics of ``docs`` synthetic texts (document ``d`` of topic ``d % TOPICS``), written once."""
    if path.exists():
        return
    t, rng, step = time.perf_counter(), np.random.default_rng([seed, 4]), 100_000
    write_shard(path, [Counts.of(synthetic_texts(rng, np.arange(start, min(docs, start + step)) % TOPICS))
                       for start in range(0, docs, step)])
    print(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s", flush=True)


def synthetic_index(directory: Path, docs: int, seed: int, terms: bool = False) -> tuple[Path, Path]:
    """The index of ``docs`` synthetic documents and the targets' codes under ``directory``,
    written unless already there; with ``terms``, term statistics of synthetic texts too."""
    directory.mkdir(parents=True, exist_ok=True)
    store, index, targets = (directory / f"codes-{docs}-seed{seed}.h5",
                             directory / f"pool-{docs}-seed{seed}{'-terms' if terms else ''}.index",
                             directory / f"targets-seed{seed}.npy")
    term_file = directory / f"terms-{docs}-seed{seed}.h5"
    if terms:
        synthetic_terms(term_file, docs, seed)
    pool = None
    if not _holds(store, docs):
        pool = Pool.make(seed)
        t = time.perf_counter()
        write_store(store, pool, docs)
        print(f"wrote {store} ({store.stat().st_size / 1e9:.1f} GB) in {time.perf_counter() - t:.0f} s", flush=True)
    if _is_index_of(index, store, docs):
        print(f"reusing {index}")
    else:
        shutil.rmtree(index, ignore_errors=True)
        pool = pool or Pool.make(seed)
        t = time.perf_counter()
        make_index(index, [store], pool, spec=None, terms=[term_file] if terms else None)
        print(f"wrote {index} (no vectors) in {time.perf_counter() - t:.0f} s", flush=True)
    if not targets.exists():
        pool = pool or Pool.make(seed)
        # Rows far past any pool: held-out documents of each topic.
        np.save(targets, np.concatenate([pool.codes((1 << 40) + 100 * t, EXAMPLES, topic=t) for t in TARGET_TOPICS]))
    return index, targets


def _holds(store: Path, docs: int) -> bool:
    if not store.exists():
        return False
    with contextlib.suppress(IndexStateError, OSError), CodeStore(store) as s:
        return s.rows == docs
    return False


def _is_index_of(index: Path, store: Path, docs: int) -> bool:
    with contextlib.suppress(IndexStateError, OSError):
        idx = Index(index)
        return idx.documents == docs and idx.shards[0].dir.codes.stat().st_ino == store.stat().st_ino
    return False


def warm(index: Path) -> None:
    """Read the codes once, so that the page cache serves both ways alike."""
    for codes in sorted(index.glob("shards/*/codes.h5")):
        with open(codes, "rb") as f:
            while f.read(1 << 26):
                pass


# -- one way of selecting, in its own process ---------------------------------------

def synthetic_selector(index: Path, target_codes: Path, engine: str = "local") -> tuple[Selector, Targets]:
    """A selector over ``index`` (on ``engine``) whose targets are the synthetic examples of ``target_codes``,
    kernels ready."""
    codes = np.load(target_codes)
    targets = Targets([f"example {i}" for i in range(len(codes))],
                      [f"topic-{t}" for t in TARGET_TOPICS for _ in range(EXAMPLES)])
    selector = Selector(index, device="cpu", engine=engine)
    selector.target_codes = lambda texts: {NEURON_TYPE: codes}
    selector.profiles(targets).score(codes[:1])          # the kernels compiled or loaded, outside the timing
    return selector, targets


def select_in_process(kind: str, index: Path, target_codes: Path, fraction: float, out: Path) -> None:
    """Select with ``kind``, write what was selected to ``out`` and print the selection's seconds as JSON."""
    selector, targets = synthetic_selector(index, target_codes)
    budget = Budget(fraction=fraction)
    wall, cpu = time.perf_counter(), time.process_time()
    if kind == "open":
        selector.profiles(targets)
        table = pa.table({"documents": [len(selector.index.tokens)]})
    elif kind == "every":
        table = every_score(selector, targets, budget)
    else:
        table = selector.select(targets, budget, search="exact").table.select(["id", "target", "similarity"])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = peak_resident()
    feather.write_feather(table, out)
    print(json.dumps({"wall": wall, "cpu": cpu, "peak_mb": peak / 2**20}))


def peak_resident() -> int:
    """Bytes: the most this process has held in memory so far."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def every_score(selector: Selector, targets: Targets, budget: Budget) -> pa.Table:
    """The selection with every document's similarity to every target held: ``Selector.select``'s
    path where it must keep every score, without a quality mixture or dedup."""
    index = selector.index
    profiles = selector.profiles(targets)
    budgets = budget.split([1.0] * len(profiles.names), int(index.tokens.sum()))
    sims = selector.similarities(profiles)
    ranking = 1.0 - sims
    rankings = [functools.partial(pick, ranking[:, m], index.ids_of, index.tokens) for m in range(len(budgets))]
    picks, _ = pick_each(rankings, budgets, index.tokens.__getitem__)
    rows = np.concatenate([p.rows for p in picks])
    return pa.table({"id": pa.array(index.ids_of(rows).tolist(), pa.string()),
                     "target": pa.array([profiles.names[m] for m, p in enumerate(picks) for _ in p.rows], pa.string()),
                     "similarity": pa.array(np.concatenate([sims[p.rows, m] for m, p in enumerate(picks)]))})


def timed(call) -> tuple[object, float, float]:
    """``call()``, its wall and CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = call()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def time_auto(index: Path, target_codes: Path, fraction: float, seed: int) -> None:
    """Print what choosing the weighting costs against the exact scan it precedes, and what was chosen."""
    selector, targets = synthetic_selector(index, target_codes)
    terms = bool(selector.index.manifest.get("terms"))
    if terms:
        texts = target_texts(seed)
        selector._texts_of = lambda _targets: texts       # the synthetic examples' texts, as the backbone reads them
    auto, budget = ScoreSpec(weighting="auto"), Budget(fraction=fraction)
    if terms:       # first: what both choices share warms up here (imports, the classifier's first fit)
        _, n_wall, n_cpu = timed(lambda: selector.profiles(targets, auto, bm25=False))
    profiles, c_wall, c_cpu = timed(lambda: selector.profiles(targets, auto))
    for c in profiles.choices:
        scores = ", ".join(f"{s['weighting']} {s['score']:.4f}" for s in c["candidates"])
        print(f"  {c['target']}: {c['weighting']}  ({scores})")
    _, s_wall, s_cpu = timed(lambda: selector.select(targets, budget, search="exact"))
    print(f"{'weighting auto, the choice':<30} wall {c_wall:>7.1f} s, cpu {c_cpu:>7.1f} s")
    if terms:
        _, q_wall, q_cpu = timed(lambda: selector.select(targets, budget, auto, search="exact"))
        print(f"{'  without the BM25 fusions':<30} wall {n_wall:>7.1f} s, cpu {n_cpu:>7.1f} s")
        print(f"{'the query under auto':<30} wall {q_wall:>7.1f} s, cpu {q_cpu:>7.1f} s  (choice and scan)")
    print(f"{'the exact scan (paper)':<30} wall {s_wall:>7.1f} s, cpu {s_cpu:>7.1f} s")
    print(f"  choice / scan: wall {c_wall / s_wall:.3f}x, cpu {c_cpu / s_cpu:.3f}x")
    if terms:
        print(f"  query under auto / scan (paper): wall {q_wall / s_wall:.3f}x, cpu {q_cpu / s_cpu:.3f}x")


def measure(kind: str, index: Path, target_codes: Path, fraction: float, out: Path,
            module: str = "tools.bench_selection") -> dict:
    """Run ``kind`` of ``module`` in a process of its own: its figures, printed by it."""
    code = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", module, "--run", kind, "--index", str(index),
           "--target-codes", str(target_codes), "--fraction", str(fraction), "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=code, env={**os.environ, "PYTHONPATH": str(code)}, stdout=subprocess.PIPE)
    printed = proc.stdout.read().decode()
    if proc.wait():
        raise SystemExit(f"{kind}: exit {proc.returncode}")
    return json.loads(printed.strip().splitlines()[-1])


def measure_each(kinds, index: Path, target_codes: Path, fraction: float, directory: Path,
                 module: str = "tools.bench_selection"):
    """Each of ``kinds`` in its own process, one after the other: yields the kind, its figures and its selection."""
    for kind in kinds:
        out = directory / f"selected-{kind}.arrow"
        figures = measure(kind, index, target_codes, fraction, out, module)
        table = feather.read_table(out)
        out.unlink()
        yield kind, figures, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=10_000_000, help="documents in the synthetic index")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/nagselect"), help="where the index is kept")
    ap.add_argument("--fraction", type=float, default=0.2, help="share of the pool's tokens selected, all targets together")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--auto", action="store_true",
                    help="time the choice of --weighting auto against the exact scan instead, in one process")
    ap.add_argument("--terms", action="store_true",
                    help="with --auto: the index keeps term statistics of synthetic texts; BM25 fusions are candidates")
    ap.add_argument("--run", choices=sorted(RUNS), help=argparse.SUPPRESS)      # one way, in its own process
    ap.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--target-codes", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        select_in_process(args.run, args.index, args.target_codes, args.fraction, args.out)
        return
    index, target_codes = synthetic_index(args.dir, args.docs, args.seed, args.terms and args.auto)
    warm(index)
    print(f"{args.docs:,} documents, {len(TARGET_TOPICS)} targets of {EXAMPLES} examples, --fraction {args.fraction:g}")
    if args.auto:
        time_auto(index, target_codes, args.fraction, args.seed)
        return
    print(f"{'method':<12} {'wall s':>8} {'cpu s':>8} {'peak MB':>9}  what")
    figures, tables = {}, {}
    for kind, f, tables[kind] in measure_each(RUNS, index, target_codes, args.fraction, args.dir):
        figures[kind] = f
        print(f"{LABELS[kind]:<12} {f['wall']:>8.1f} {f['cpu']:>8.1f} {f['peak_mb']:>9,.0f}  {RUNS[kind]}", flush=True)
    every, stream, base = figures["every"], figures["stream"], figures["open"]
    if not tables["every"].equals(tables["stream"]):
        raise SystemExit("the two ways selected different documents")
    selected = tables["stream"]
    per = selected.group_by("target").aggregate([("id", "count")])["id_count"].to_pylist()
    print(f"  same selection, same order, same similarities: {len(selected):,} documents "
          f"({min(per):,} to {max(per):,} per target)")
    print(f"  every score / streaming: peak memory {every['peak_mb'] / stream['peak_mb']:.2f}x "
          f"({every['peak_mb'] - base['peak_mb']:,.0f} MB against {stream['peak_mb'] - base['peak_mb']:,.0f} MB "
          f"above opening the index), wall {every['wall'] / stream['wall']:.2f}x, cpu {every['cpu'] / stream['cpu']:.2f}x")


if __name__ == "__main__":
    main()
