"""What the learned weighting costs: fitting the classifier against the exact scan it precedes.

``--weighting classifier`` fits one logistic regression per target before the
scan (query/classifier.py): it reads ``--negatives`` pool documents back from
the index and cross-validates the regularisation. Its cost does not grow with
the pool, the scan's does; this measures both in one run on the synthetic
index of ``tools/bench_selection`` (written once under ``--dir``, then reused):

- ``profiles``: the six targets' weight tables, for the paper's weighting
  (counts) and for the classifier (negatives read, models fitted);
- ``scan``: ``Selector.select(search="exact")`` with those tables, the streaming
  exact selection of ``--fraction`` of the pool's tokens.

    python -m tools.bench_classifier --docs 10000000 --dir /tmp/nagselect
"""
from __future__ import annotations

import argparse
from pathlib import Path

from query.budget import Budget
from query.classifier import DEFAULT_NEGATIVES
from query.profile import ScoreSpec

from .bench_selection import EXAMPLES, TARGET_TOPICS, synthetic_index, synthetic_selector, timed, warm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=10_000_000, help="documents in the synthetic index")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/nagselect"), help="where the index is kept")
    ap.add_argument("--fraction", type=float, default=0.2, help="share of the pool's tokens selected")
    ap.add_argument("--negatives", type=int, default=DEFAULT_NEGATIVES, help="pool documents the classifier learns against")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    index, target_codes = synthetic_index(args.dir, args.docs, args.seed)
    warm(index)
    selector, targets = synthetic_selector(index, target_codes)
    print(f"{args.docs:,} documents, {len(TARGET_TOPICS)} targets of {EXAMPLES} examples, "
          f"--negatives {args.negatives:,}, --fraction {args.fraction:g}")
    print(f"{'weighting':<11} {'profiles s':>11} {'cpu s':>8} {'scan s':>8} {'cpu s':>8}")
    figures = {}
    for weighting in ("paper", "classifier"):
        spec = ScoreSpec(weighting=weighting, negatives=args.negatives)
        _, p_wall, p_cpu = timed(lambda: selector.profiles(targets, spec))
        _, s_wall, s_cpu = timed(lambda: selector.select(targets, Budget(fraction=args.fraction), spec, search="exact"))
        figures[weighting] = (p_wall, p_cpu, s_wall, s_cpu)
        print(f"{weighting:<11} {p_wall:>11.1f} {p_cpu:>8.1f} {s_wall:>8.1f} {s_cpu:>8.1f}", flush=True)
    fit_wall, fit_cpu = figures["classifier"][:2]
    # The paper's tables cost nothing to build, so its select is the scan alone.
    scan_wall, scan_cpu = figures["paper"][2:]
    print(f"  classifier fit / scan: wall {fit_wall / scan_wall:.2f}x, cpu {fit_cpu / scan_cpu:.2f}x "
          f"({fit_wall:.1f} s fitting against {scan_wall:.1f} s scanning {args.docs:,} documents)")


if __name__ == "__main__":
    main()
