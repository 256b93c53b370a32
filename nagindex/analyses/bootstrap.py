"""How sure a proxy gain is: paired bootstrap intervals over seeds, and over tasks for the mean.

Every method trains once per seed, and seed ``s`` draws both the random sample
and the training order, so a method's gain over random is measured in pairs:
``random[s] - method[s]``, which cancels what the order alone does to the loss.
A task's interval resamples those paired gains over seeds; the mean's resamples
seeds (jointly over tasks, since a seed is one training order for all of them)
and tasks, so it also says how much the verdict hangs on which tasks were
chosen. Intervals are percentile intervals of ``RESAMPLES`` resamples from a
fixed generator: the same result gives the same interval. numpy rather than
``scipy.stats.bootstrap``, which resamples one axis, where the mean needs two;
and with as few as three seeds its BCa interval is undefined.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    estimate: float       # the mean paired gain
    low: float
    high: float


def paired_intervals(gains: np.ndarray, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0
                     ) -> tuple[list[Interval], Interval]:
    """Each task's interval, and the mean over tasks'.

    ``gains``: shape (seeds, tasks), the paired gain of each seed on each task;
    ``resamples``: bootstrap draws; ``level``: the interval's coverage;
    ``seed``: the generator's, fixed so that a result always reads the same.
    With one seed a task's interval is the point itself: one pair says nothing
    of the spread.
    """
    gains = np.asarray(gains, dtype=np.float64)
    seeds, tasks = gains.shape
    rng = np.random.default_rng(seed)
    cut = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    drawn = rng.integers(0, seeds, size=(resamples, seeds))
    per_task = gains[drawn].mean(axis=1)                                     # (resamples, tasks)
    each = [Interval(float(gains[:, t].mean()), *map(float, np.percentile(per_task[:, t], cut)))
            for t in range(tasks)]
    chosen = rng.integers(0, tasks, size=(resamples, tasks))
    means = np.take_along_axis(per_task, chosen, axis=1).mean(axis=1)
    return each, Interval(float(gains.mean()), *map(float, np.percentile(means, cut)))
