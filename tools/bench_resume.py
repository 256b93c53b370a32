"""How long a resumed build takes to reach its first new window, reading on from the parts or from the start.

A build killed at ``--at`` (default 90%) of a corpus of ``--docs`` documents
left the parts of its finished windows. The rerun's time to its first new
forward batch is the time to rebuild what it needs (the seen ids, the skipped
records) and read up to the first window without a part: the backbone and its
forwards cost the same either way, so they are left out, and the parts are
written with random codes (their reading does not depend on them). Two ways
are timed on the same parts, one after the other:

- ``from the start``: the corpus read again from its first record, the
  finished windows passed over (what nagindex did before parts recorded
  their ends);
- ``from the parts``: ``indexer.parts.resume_point`` and ``read_records``
  from the recorded position (what a rerun does now).

Both must give the same first window. The corpus is JSONL, and ``--gzip``
also times a ``.jsonl.gz`` copy (which must still be decompressed up to the
position)::

    nice python -m tools.bench_resume --docs 100000 --gzip
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from indexer.parts import PartWriter, Resume, pending_windows, resume_point
from nagindex.corpus import Skipped, read_records
from nagindex.indexdir import ShardDir
from nagindex.store import Rows

WORDS = ("cell energy flour water committee budget river mountain protein enzyme market price engine "
         "voltage poem verse harbour storm garden seed theorem proof").split()
LAYERS, TOP_K = 30, 20          # SmolLM2-135M's layers, the default K


def write_corpus(path: Path, docs: int, words: int, seed: int) -> None:
    rng = random.Random(seed)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        for i in range(docs):
            f.write(json.dumps({"id": f"doc-{i}", "text": " ".join(rng.choices(WORDS, k=words))}) + "\n")
            if i % 997 == 5:
                f.write("{a bad line\n")                  # skipped records in the finished windows too


def interrupted(files: list[Path], work: ShardDir, window: int, windows: int) -> None:
    """The parts a build killed after ``windows`` windows left, with random codes."""
    rng = np.random.default_rng(0)
    skipped: list[Skipped] = []
    records = read_records(files, on_error="skip", skipped=skipped)
    parts = PartWriter(work)
    for w in pending_windows(records, work, window, skipped, Resume()):
        if w.k == windows:
            break
        n = len(w.records)
        parts.write(w.k, Rows(ids=[r.id for r in w.records], tokens=np.full(n, 120, np.int64),
                              source_file=np.zeros(n, np.uint32),
                              source_offset=np.fromiter((r.offset for r in w.records), np.int64, n),
                              codes={"fwd_up": rng.integers(0, 1536, (n, LAYERS, TOP_K), dtype=np.uint16)}),
                    w.end, [r.where for r in w.records])


def first_new_window(files: list[Path], work: ShardDir, window: int, from_parts: bool) -> tuple[float, list[str]]:
    """Seconds to the first window without a part, and its ids."""
    started = time.perf_counter()
    resume = resume_point(work) if from_parts else Resume()
    skipped = list(resume.skipped)
    records = read_records(files, on_error="skip", skipped=skipped, seen_ids=dict(resume.seen), start=resume.start)
    w = next(pending_windows(records, work, window, skipped, resume))
    return time.perf_counter() - started, [r.id for r in w.records]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--at", type=float, default=0.9, help="share of the corpus done when the build was killed")
    ap.add_argument("--window", type=int, default=1024, help="documents a part (build --window)")
    ap.add_argument("--words", type=int, default=150, help="words a document")
    ap.add_argument("--gzip", action="store_true", help="also time a .jsonl.gz copy of the corpus")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for kind in (".jsonl", ".jsonl.gz") if args.gzip else (".jsonl",):
            corpus = Path(tmp) / f"corpus{kind}"
            write_corpus(corpus, args.docs, args.words, args.seed)
            work = ShardDir("00000", Path(tmp) / f"{kind}.partial")
            work.path.mkdir()
            windows = int(args.docs * args.at) // args.window
            interrupted([corpus], work, args.window, windows)
            before, a = first_new_window([corpus], work, args.window, from_parts=False)
            after, b = first_new_window([corpus], work, args.window, from_parts=True)
            assert a == b, "the two ways reached different windows"
            print(f"{kind}: {args.docs:,} documents ({corpus.stat().st_size / 1e6:.0f} MB), {windows} of "
                  f"{-(-args.docs // args.window)} windows done: first new window after {before:.2f} s from the "
                  f"start, {after:.2f} s from the parts: {before / after:.1f}x faster")


if __name__ == "__main__":
    main()
