"""Peak memory of ``nagindex build`` on records built to exhaust it.

Two corpora, each a few ordinary documents and one hostile record:

- ``50 MB record``: one JSONL line of 50 MB of words, read and tokenized
  (built with ``--max-record-size 64MB`` so that it is not refused);
- ``zstd bomb``: a 32 KB ``.jsonl.zst`` whose one line decompresses to 1 GiB
  (built with ``--skip-bad``, the default record size limit refusing it);

and ``baseline``, the ordinary documents alone: what the backbone costs.
Each build runs in its own process; its peak resident memory is what the
kernel reports for it. With ``--before DIR`` (a checkout of an earlier
nagindex, e.g. ``git worktree add /tmp/before main``) every build also runs
with that code, and the ratio is printed.

    python -m tools.bench_memory --before /tmp/before

With ``--pool`` it measures instead what reading an index costs as the pool
grows (tools.bench_pool_memory).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zstandard

_MB = 1 << 20
ORDINARY = [f"Document {i}: the committee met on Monday and agreed on the budget for the coming year." for i in range(4)]


def ordinary_lines() -> bytes:
    return b"".join(json.dumps({"id": f"d{i}", "text": t}).encode() + b"\n" for i, t in enumerate(ORDINARY))


def write_long_record(path: Path, size: int) -> None:
    """``size`` bytes of ordinary words in one record, after the ordinary documents."""
    words = " ".join(ORDINARY).encode()
    body = (words + b" ") * (size // (len(words) + 1))
    with open(path, "wb") as f:
        f.write(ordinary_lines())
        f.write(b'{"id": "long", "text": "' + body + b'"}\n')


def write_bomb(path: Path, size: int) -> None:
    """A zstd file whose one record decompresses to ``size`` bytes of spaces (about 32 KB per GiB)."""
    with open(path, "wb") as raw, zstandard.ZstdCompressor(level=19).stream_writer(raw) as out:
        out.write(ordinary_lines())
        out.write(b'{"id": "bomb", "text": "')
        chunk = b" " * _MB
        for _ in range(size // _MB):
            out.write(chunk)
        out.write(b'"}\n')


def peak_rss(code: Path, args: list[str]) -> tuple[float, float, int]:
    """``(peak resident MB, seconds, exit status)`` of ``python -m nagindex.cli ARGS`` run with ``code``."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "nagindex.cli", *args], env=env, cwd=code,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace").strip().splitlines()
    if proc.returncode:
        print(f"  ({code.name}: exit {proc.returncode}: {err[-1] if err else ''})", file=sys.stderr)
    return usage.ru_maxrss / 1024, time.perf_counter() - started, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, default=None, help="A checkout of the code to compare with.")
    parser.add_argument("--model", default=None, help="Backbone [default: the default backbone].")
    parser.add_argument("--record-mb", type=int, default=50)
    parser.add_argument("--bomb-mb", type=int, default=1024)
    parser.add_argument("--pool", action="store_true", help="Measure reading an index instead (tools.bench_pool_memory).")
    args, rest = parser.parse_known_args()
    if args.pool:
        from tools.bench_pool_memory import main as pool_main
        pool_main(rest, args.before)
        return
    after = Path(__file__).resolve().parents[1]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpora = {name: tmp / name for name in ("baseline", "long", "bomb")}
        for path in corpora.values():
            path.mkdir()
        (corpora["baseline"] / "docs.jsonl").write_bytes(ordinary_lines())
        write_long_record(corpora["long"] / "docs.jsonl", args.record_mb * _MB)
        write_bomb(corpora["bomb"] / "docs.jsonl.zst", args.bomb_mb * _MB)
        bomb_kb = (corpora["bomb"] / "docs.jsonl.zst").stat().st_size / 1024
        cases = [
            ("baseline", corpora["baseline"], [], []),
            (f"{args.record_mb} MB record", corpora["long"], [], ["--max-record-size", f"{args.record_mb + 14}MB"]),
            (f"zstd bomb ({bomb_kb:.0f} KB -> {args.bomb_mb} MB)", corpora["bomb"], ["--skip-bad"], []),
        ]
        codes = [("before", args.before)] if args.before else []
        codes.append(("after", after))
        print(f"{'case':<32}" + "".join(f"{name + ' MB':>12}{name + ' s':>10}" for name, _ in codes)
              + ("       ratio" if args.before else ""))
        for label, corpus, common, new_only in cases:
            figures = []
            for name, code in codes:
                extra = common + (new_only if name == "after" else [])
                out = tmp / f"{corpus.name}-{name}.index"
                model = ["--model", args.model] if args.model else []
                figures.append(peak_rss(code, ["build", str(corpus), "-o", str(out), "--quiet", *model, *extra]))
            row = "".join(f"{mb:>12,.0f}{s:>10.1f}" for mb, s, _ in figures)
            ratio = f"{figures[0][0] / figures[-1][0]:>11.1f}x" if args.before else ""
            print(f"{label:<32}{row}{ratio}", flush=True)


if __name__ == "__main__":
    main()
