"""Fault injection: builds, appends and sharded builds with their merge, killed (SIGKILL) at random moments.

Each trial runs one operation as a user would, in a fresh directory, as a
sequence of ``nagindex`` commands; each command is killed at a moment drawn
uniformly over its uninterrupted run time, rerun, killed again, up to
``--kills`` times, then rerun to the end. The index is then compared with the
one the same commands give uninterrupted: the same ids, token counts, codes
and sources in the same order, ``nagindex verify`` clean, and no temporary
file left in a finished shard. The operations:

- ``build``: one build of the whole corpus;
- ``append``: an append of half the corpus to an index of the other half;
- ``shards``: ``build --shard 0/2``, ``--shard 1/2``, then ``merge``.

Prints the counts: trials, kills, commands that failed on a rerun, and
mismatches (indexes that differ from the uninterrupted one).

    python -m tools.fault_campaign --model path/to/model --trials 30 --dir /tmp/nagfaults
"""
from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nagindex.atomic import LEFTOVER
from nagindex.demo import make_demo
from nagindex.index import Index
from nagindex.verify import verify

OPERATIONS = ("build", "append", "shards")


@dataclass
class Counts:
    trials: int = 0
    kills: int = 0
    failures: int = 0
    mismatches: int = 0

    def line(self) -> str:
        return (f"trials {self.trials}, kills {self.kills}, failed reruns {self.failures}, "
                f"mismatches {self.mismatches}")


def commands(operation: str, corpus: Path, index: Path, model: Path, window: int) -> list[list[str]]:
    """The ``nagindex`` commands of one operation (``append``: after its base index exists)."""
    common = ["--model", str(model), "--window", str(window), "--quiet"]
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    if operation == "build":
        return [["build", str(corpus), "-o", str(index), *common]]
    if operation == "append":
        return [["build", *map(str, files[1::2]), "-o", str(index), "--append", *common]]
    return [["build", str(corpus), "-o", str(index), "--shard", f"{i}/2", *common] for i in range(2)] + \
        [["merge", str(index)]]


def base(corpus: Path, index: Path, model: Path, window: int) -> list[str]:
    """The index an append starts from: the other half of the corpus."""
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    return ["build", *map(str, files[0::2]), "-o", str(index), "--model", str(model), "--window", str(window), "--quiet"]


def nagindex(args: list[str], kill_after: float | None = None) -> tuple[int | None, str]:
    """Run ``nagindex ARGS``; with ``kill_after``, SIGKILL it then. Returns (exit code or None if killed, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "nagindex.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None, ""
    return proc.returncode, proc.stderr.read()


def snapshot(index: Path) -> dict:
    """All that a query reads of an index, in index order."""
    idx = Index(index)
    try:
        sources = [np.stack(s.store.sources()) for s in idx.shards]
        return {"ids": idx.ids.tolist(), "tokens": idx.tokens.tolist(),
                "codes": np.concatenate([c for _, c in idx.iter_codes(idx.neuron_types[0])]).tobytes(),
                "sources": np.concatenate(sources, axis=1).tobytes(),
                "files": [[f["path"] for f in s.meta["files"]] for s in idx.shards]}
    finally:
        idx.close()


def leftovers(index: Path) -> list[Path]:
    return [p for p in index.rglob("*") if LEFTOVER.fullmatch(p.name) and ".partial" not in str(p.parent)]


def run_campaign(directory: Path, model: Path, trials: int, kills: int, seed: int, docs: int = 120,
                 window: int = 4, operations: tuple[str, ...] = OPERATIONS, log=print) -> Counts:
    """``trials`` trials, cycling through ``operations``; see the module's docstring."""
    rng = random.Random(seed)
    corpus = directory / "demo" / "corpus"
    if not corpus.exists():
        make_demo(directory / "demo", docs=docs, seed=seed)
    reference, seconds = {}, {}
    for op in operations:
        index = directory / f"reference-{op}"
        shutil.rmtree(index, ignore_errors=True)
        if op == "append":
            _must(nagindex(base(corpus, index, model, window)), "base")
            shutil.copytree(index, directory / "base-append")
        seconds[op] = []
        for args in commands(op, corpus, index, model, window):
            t = time.perf_counter()
            _must(nagindex(args), " ".join(args))
            seconds[op].append(time.perf_counter() - t)
        reference[op] = snapshot(index)
    counts = Counts()
    for trial in range(trials):
        op = operations[trial % len(operations)]
        index = directory / f"trial-{trial}"
        shutil.rmtree(index, ignore_errors=True)
        if op == "append":
            shutil.copytree(directory / "base-append", index)
        failed = False
        for args, duration in zip(commands(op, corpus, index, model, window), seconds[op]):
            for _ in range(kills):
                code, _ = nagindex(args, kill_after=rng.uniform(0, duration))
                if code is not None:
                    failed |= code != 0
                    break
                counts.kills += 1
            code, err = nagindex(args)
            if code != 0:
                failed = True
                log(f"trial {trial} ({op}): `nagindex {' '.join(args)}` failed after a kill: {err.strip()}")
        counts.trials += 1
        counts.failures += failed
        if failed:
            continue
        report = verify(index)
        same = snapshot(index) == reference[op] and report.ok and not leftovers(index)
        if not same:
            counts.mismatches += 1
            log(f"trial {trial} ({op}): the index differs from the uninterrupted one "
                f"({report.problems[:1] or leftovers(index)[:1] or 'its contents'})")
        shutil.rmtree(index)
        log(f"after trial {trial} ({op}): {counts.line()}")
    return counts


def _must(result: tuple[int | None, str], what: str) -> None:
    code, err = result
    if code != 0:
        raise SystemExit(f"`nagindex {what}` failed uninterrupted: {err.strip()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="backbone for the builds (a small one keeps trials short)")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/nagfaults"), help="where corpora and indexes are written")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--kills", type=int, default=2, help="kills per command of a trial, before the run to the end")
    ap.add_argument("--docs", type=int, default=120, help="documents in the demo corpus")
    ap.add_argument("--window", type=int, default=4, help="documents per resumable step")
    ap.add_argument("--operations", nargs="+", choices=OPERATIONS, default=list(OPERATIONS))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    counts = run_campaign(args.dir, args.model, args.trials, args.kills, args.seed, args.docs, args.window,
                          tuple(args.operations))
    print(counts.line())
    sys.exit(1 if counts.failures or counts.mismatches else 0)


if __name__ == "__main__":
    main()
