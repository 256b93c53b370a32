"""``--weighting auto``: each task's weighting chosen from its own examples, by held-out folds.

No fixed weighting ranks best on every pool and task (docs/design.md §1.3), and
checking downstream (``nagindex proxy``) trains a model per method. The
examples themselves can tell instead: split a task's examples into
:data:`FOLDS` folds, build every candidate weighting from the other folds,
plant the held-out examples among a fixed-seed sample of the pool, and see how
high each candidate ranks them (the mean rank percentile of each held-out
example among the sample documents, that is the area under the ROC curve of
held-out against sample; ties count half). The candidate that ranks them
highest on average scores the task's selection, built from all of its examples.

Candidates are the weightings of :data:`CANDIDATES`, simplest first: each base
weighting, and the sum of two of them standardised by the pool sample's
spread, which is again one linear weight table and scores exactly like any
other. Only exact ties give way to the simplest tied candidate: a margin for
noise would keep the simpler weighting on tasks where a richer one is better
(docs/design.md §1.3). A task with fewer than :data:`MIN_EXAMPLES` examples keeps the paper's
weighting, and says so.

The classifier's negatives and the sample the examples are planted among are
disjoint parts of one pool sample: a table fitted to push some documents down
must not be judged on those same documents. The classifier's fits are what the
choice costs, so here it learns against fewer negatives, with a fixed, strong
regularisation (:data:`C`). Everything is seeded by the
query's ``seed``, so the same inputs make the same choice.
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from nagindex.errors import InputError
from nagindex.index import Index

from .bm25 import Bm25, term_stats
from .classifier import sample_rows
from .profile import Profiles, ScoreSpec, build_profiles

AUTO = "auto"
FOLDS = 4
MIN_EXAMPLES = 2 * FOLDS      # two held-out examples per fold, at least
PLANTED_AMONG = 4096          # pool documents the held-out examples are ranked among
NEGATIVES = 1024              # at most, for the classifier: its fits are what auto's time goes to
C = 0.01                      # the classifier's inverse regularisation, fixed (docs/design.md §1.3)
METRIC = "mean rank percentile of each held-out example among the pool sample"


@dataclass(frozen=True)
class Candidate:
    """A weighting auto may choose: one base weighting, or the standardised sum of several."""

    parts: tuple[str, ...]

    @property
    def name(self) -> str:
        return "+".join(self.parts)


#: In order of simplicity, which decides ties. The fusions with BM25 join where the index keeps term
#: statistics and the query scans exactly (a BM25 score is no weight table over the codes).
CANDIDATES = (*(Candidate((w,)) for w in ("paper", "idf", "classifier")),
              Candidate(("paper", "idf")), Candidate(("paper", "classifier")), Candidate(("idf", "classifier")),
              Candidate(("paper", "bm25")), Candidate(("idf", "bm25")), Candidate(("classifier", "bm25")))
BM25 = "bm25"


@dataclass
class Pool:
    """What the candidates are built from and judged against, read once per query."""

    index: Index
    spec: ScoreSpec
    planted_among: np.ndarray     # codes [n, L, K] of the sample the held-out examples are ranked among
    planted_rows: np.ndarray      # their rows, ascending
    negatives: np.ndarray         # codes of the disjoint sample the classifier learns against
    df: np.ndarray                # the pool's slot counts, for idf

    @classmethod
    def read(cls, index: Index, spec: ScoreSpec) -> "Pool":
        """Both samples from one seeded draw of :data:`NEGATIVES` (or fewer ``spec.negatives``) +
        :data:`PLANTED_AMONG` documents; a smaller pool is split between them in that ratio."""
        negatives = min(spec.negatives, NEGATIVES)
        total = min(index.documents, negatives + PLANTED_AMONG)
        rows = sample_rows(index.documents, total, spec.seed)
        order = np.random.default_rng([spec.seed, 1]).permutation(total)
        planted = max(1, round(total * PLANTED_AMONG / (PLANTED_AMONG + negatives)))
        codes = lambda part: index.codes_of(spec.neuron_type, np.sort(rows[part]))
        return cls(index, spec, codes(order[:planted]), np.sort(rows[order[:planted]]), codes(order[planted:]),
                   index.slot_counts(spec.neuron_type))

    def profiles(self, groups: dict, weighting: str) -> Profiles:
        """``weighting``'s profiles of ``groups``; the classifier's regularisation is fixed at :data:`C` (or the
        spec's ``c``), as cross-validating it in every fold would cost more than the scan
        (tools/bench_selection.py --auto)."""
        idx = self.index
        spec = dataclasses.replace(self.spec, weighting=weighting, c=self.spec.c or C)
        return build_profiles(groups, idx.neurons[spec.neuron_type], idx.num_layers, idx.top_k, spec, self.df,
                              idx.documents, self.negatives)


@dataclass
class Terms:
    """BM25 over every target's terms, and its ``idf x tf`` of the pool sample's documents: read once a query,
    as reading the postings of the targets' terms is what BM25 costs."""

    bm25: Bm25
    planted: sp.csr_matrix        # [len(pool.planted_rows), terms]

    @classmethod
    def read(cls, index: Index, pool: Pool, texts: dict[str, list[str]]) -> "Terms":
        bm25 = Bm25(index, texts, term_stats(index))
        return cls(bm25, bm25.rows_matrix(pool.planted_rows))


def choose_profiles(index: Index, groups: dict[str, np.ndarray], spec: ScoreSpec,
                    texts: dict[str, list[str]] | None = None) -> Profiles:
    """Profiles of named groups of target codes ``[T, L, K]``, each task scored by its chosen weighting.

    Args:
        index: the index the targets are scored against; its pool is sampled.
        groups: task name -> its examples' codes.
        spec: the query's scoring; its weighting is ``auto``, its ``negatives`` and ``seed``
            size and seed the pool sample.
        texts: task name -> its examples' texts as the backbone reads them, where the fusions with
            BM25 are candidates (an index with term statistics, scanned exactly); None leaves them out.

    Returns:
        :class:`Profiles` whose ``choices`` hold, per task, the weighting chosen and each
        candidate's held-out score.

    Raises:
        InputError: a task has no examples.
    """
    empty = [name for name, codes in groups.items() if not len(codes)]
    if empty:
        raise InputError(f"target task {empty[0]!r} has no examples: give it some, or leave it out")
    pool = Pool.read(index, spec)
    # --power shapes frequency weightings; the classifier's coefficients take none.
    candidates = [c for c in CANDIDATES if (spec.power == 1.0 or "classifier" not in c.parts)
                  and (texts is not None or BM25 not in c.parts)]
    terms = Terms.read(index, pool, texts) if texts is not None else None
    columns, choices, factors = [], [], []
    for m, (name, codes) in enumerate(groups.items()):
        if len(codes) < MIN_EXAMPLES:
            tqdm.write(f"weighting auto: target {name!r} has {len(codes)} examples, fewer than the {MIN_EXAMPLES} "
                       f"that {FOLDS} held-out folds need; it is scored with the paper weighting", file=sys.stderr)
            choice = {"target": name, "examples": len(codes), "weighting": "paper",
                      "reason": f"fewer than {MIN_EXAMPLES} examples to fold"}
            chosen = Candidate(("paper",))
        else:
            scores = held_out_scores(pool, codes, candidates, spec.seed, terms, texts and texts[name])
            chosen, choice = best(scores), {"target": name, "examples": len(codes)}
            choice |= {"weighting": chosen.name, "folds": FOLDS, "planted_among": len(pool.planted_among),
                       "metric": METRIC, "candidates": [{"weighting": c.name, **s.summary(scores[best(scores)])}
                                                        for c, s in scores.items()]}
        profile, factor, standard = _final(pool, name, codes, chosen, terms, m)
        columns.append(profile)
        factors.append(factor)
        choices.append(choice | ({"standardised": standard} if standard else {}))
    first = columns[0]
    fused = any(factors)
    return Profiles(list(groups), np.concatenate([c.table for c in columns], axis=2),
                    np.concatenate([c.scale for c in columns]), first.layers, first.top_k,
                    np.concatenate([c.counts for c in columns]), np.concatenate([c.examples for c in columns]),
                    choices=choices, bm25=terms.bm25 if fused else None,
                    bm25_scale=np.array(factors) if fused else None)


@dataclass
class Score:
    """One candidate's rank percentile of every held-out example."""

    percentile: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.percentile.mean())

    def behind(self, other: "Score") -> tuple[float, float]:
        """How far below ``other`` this is, and the standard error of that, paired by example."""
        diff = other.percentile - self.percentile
        return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))

    def summary(self, top: "Score") -> dict:
        gap, error = self.behind(top)
        return {"score": self.mean, "behind_best": gap, "standard_error": error}


def best(scores: dict[Candidate, Score]) -> Candidate:
    """The highest mean; ``max`` keeps the first of exact ties, and candidates come simplest first."""
    return max(scores, key=lambda c: scores[c].mean)


def held_out_scores(pool: Pool, codes: np.ndarray, candidates: list[Candidate], seed: int,
                    terms: "Terms | None" = None, texts: list[str] | None = None) -> dict[Candidate, Score]:
    """Each candidate's rank percentile of every example of one task, built without the example's fold;
    ``terms`` and the examples' ``texts`` score the candidates with BM25."""
    fold = np.empty(len(codes), np.int64)
    fold[np.random.default_rng([seed, 2]).permutation(len(codes))] = np.arange(len(codes)) % FOLDS
    train = {f: codes[fold != f] for f in range(FOLDS)}
    bases = dict.fromkeys(p for c in candidates for p in c.parts)
    sample, held = {}, {}
    for weighting in bases:
        if weighting == BM25:
            sample[weighting], held[weighting] = _bm25_folds(terms, texts, fold)
            continue
        profiles = pool.profiles(train, weighting)
        sample[weighting] = profiles.score(pool.planted_among)               # [n, FOLDS]
        held[weighting] = profiles.score(codes)[np.arange(len(codes)), fold]  # each by its own fold's table
    out = {}
    for c in candidates:
        spread = {w: _spread(sample[w]) for w in c.parts}
        s = sum(sample[w] / spread[w] for w in c.parts)
        h = sum(held[w] / spread[w][fold] for w in c.parts)
        out[c] = Score(_percentiles(s, h, fold))
    return out


def _bm25_folds(terms: "Terms", texts: list[str], fold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pool sample's BM25 scores ``[n, FOLDS]`` under each fold's queries (the other folds' examples),
    and each example's score under its own fold's, as if it were one more pool document.

    A fold's score is linear in its examples' mean term counts, so each side is one sparse product with the
    pool's ``idf * tfc`` of the task's terms (docs/design.md §1.3)."""
    counts = terms.bm25.example_counts(texts)
    weights = np.stack([counts[fold != f].mean(0) for f in range(FOLDS)], 1)       # [terms, FOLDS]
    sample = np.asarray(terms.planted @ weights)
    held = np.asarray(terms.bm25.texts_matrix(texts) @ weights)[np.arange(len(texts)), fold]
    return sample, held


def _spread(scores: np.ndarray) -> np.ndarray:
    """Per column, the pool sample's standard deviation (1 where it has none)."""
    sd = scores.std(axis=0)
    return np.where(sd > 0, sd, 1.0)


def _percentiles(sample: np.ndarray, held: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """The share of its fold's column of sample scores that each held-out score is above, ties counted half."""
    out = np.empty(len(held))
    for f in range(sample.shape[1]):
        mine = fold == f
        column = np.sort(sample[:, f])
        below = np.searchsorted(column, held[mine], "left")
        tied = np.searchsorted(column, held[mine], "right") - below
        out[mine] = (below + 0.5 * tied) / len(column)
    return out


def _final(pool: Pool, name: str, codes: np.ndarray, chosen: Candidate, terms: "Terms | None",
           m: int) -> tuple[Profiles, float, dict[str, dict]]:
    """One task's profile under ``chosen``, from all of its examples: paper's and idf's are exactly
    what naming them gives, the classifier's is fitted as it was judged. A fusion is each part's
    similarity over its spread on the pool sample, averaged: the codes' parts as one table, BM25 as
    the factor of its score (returned, 0 without it); each part's mean and spread on the sample are
    returned too, for the manifest (the means shift every document alike and are left out of the sum)."""
    tables = [w for w in chosen.parts if w != BM25]
    parts = [pool.profiles({name: codes}, w) for w in tables]
    if len(chosen.parts) == 1:
        return parts[0], 0.0, {}
    standard = {w: _standard(p.score(pool.planted_among)[:, 0]) for w, p in zip(tables, parts)}
    table = sum(p.table.astype(np.float64) * (p.scale / standard[w]["sd"]) for w, p in zip(tables, parts))
    factor = 0.0
    if BM25 in chosen.parts:
        standard[BM25] = _standard(np.asarray(terms.planted @ terms.bm25.weights[:, m]))
        factor = 1.0 / (standard[BM25]["sd"] * len(chosen.parts))
    profile = dataclasses.replace(parts[0], table=np.ascontiguousarray(table / len(chosen.parts), dtype=np.float32),
                                  scale=np.ones(1))
    return profile, factor, standard


def _standard(scores: np.ndarray) -> dict[str, float]:
    """A part's mean and spread over the pool sample (spread 1 where it has none)."""
    return {"mean": float(scores.mean()), "sd": float(_spread(scores[:, None])[0])}


def describe(choices: list[dict]) -> str:
    """One line for the user: what each task chose."""
    return "weighting auto chose " + ", ".join(f"{c['weighting']} for {c['target']}" for c in choices) + \
        f" (held out in {FOLDS} folds; the manifest and `nagindex explain` give each candidate's score)"
