"""Target profiles: per layer, how often each neuron is in the target's NAGs.

The paper's weight of a (layer, neuron) slot is ``f_l(n) = count / (|T| K)``;
a pool document's similarity is ``(1/L) sum_l sum_{n in NAG_l(d)} f_l(n)``.
Keeping the integer counts in the table and the ``1 / (|T| K L)`` apart makes
every similarity an exact integer sum, so ties are exact ties, as in the paper.

Variants, all at query time from the same codes: a subset of layers, a smaller
K' (codes are stored in descending impact order), a power ``p`` on the weights
(renormalised per layer), and weighting by pool rarity (``idf``): each slot's
weight divided by the share of pool documents whose NAG holds it, the
importance ratio that DSIR applies to hashed n-grams; or a table learned to
separate the target from a sample of the pool (``classifier``, query.classifier).
The classifier's similarity is its linear score (signed coefficients summed
over the document's slots, without the intercept) divided by the number of
layers, like the paper's; the distance is 1 - similarity, ranked ascending as
for every weighting, and can be negative or above 1.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from nagindex.errors import NagindexError
from nagindex.settings import WEIGHTINGS

from .bm25 import Bm25
from .classifier import DEFAULT_NEGATIVES, fit_weights
from .scoring import score_codes


@dataclass(frozen=True)
class ScoreSpec:
    """How documents are scored; everything here is a query-time choice."""

    neuron_type: str = "fwd_up"
    layers: tuple[int, ...] | None = None    # None: all layers
    top_k: int | None = None                 # None: the index's K
    power: float = 1.0
    weighting: str = "paper"                 # one of WEIGHTINGS, or auto (query.auto)
    negatives: int = DEFAULT_NEGATIVES       # classifier: pool documents sampled as negatives
    seed: int = 0                            # classifier: seed of that sample
    c: float | None = None                   # classifier: inverse regularisation; None: cross-validated


def parse_layers(spec: str, num_layers: int) -> tuple[int, ...]:
    """``all``, ``last``, ``first``, ``N`` (negative counts from the end), ``A-B``, or a comma list."""
    spec = spec.strip().lower()
    named = {"all": range(num_layers), "last": [num_layers - 1], "first": [0]}
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if part in named:
            out.extend(named[part])
        elif re.fullmatch(r"-?\d+", part):
            out.append(int(part) + num_layers if int(part) < 0 else int(part))
        elif m := re.fullmatch(r"(\d+)-(\d+)", part):
            out.extend(range(int(m[1]), int(m[2]) + 1))
        else:
            raise NagindexError(f"--layers {spec!r}: use all, last, first, N, A-B or a comma list of these")
    if not out or not all(0 <= i < num_layers for i in out):
        raise NagindexError(f"--layers {spec!r}: layers run from 0 to {num_layers - 1}")
    return tuple(sorted(set(out)))


@dataclass
class Profiles:
    """One column per target: ``table[l, n, m]`` and ``scale[m]`` with sim = scale * sum, plus, with ``bm25``,
    ``bm25_scale[m]`` times the target's BM25 score of the document (docs/design.md §1.3)."""

    names: list[str]
    table: np.ndarray        # float32 [L_sel, N, M]
    scale: np.ndarray        # float64 [M]
    layers: np.ndarray       # int64 [L_sel]
    top_k: int
    counts: np.ndarray       # float64 [M, L_sel, N]: raw target counts, for explanations
    examples: np.ndarray     # int64 [M]
    choices: list[dict] = field(default_factory=list)   # --weighting auto: per task, what it chose and why
    bm25: Bm25 | None = None             # BM25 scores added to the similarity (--weighting bm25, auto's fusions)
    bm25_scale: np.ndarray | None = None  # [M]: the factor of each target's BM25 score
    codes: bool = True                    # False: the codes weigh nothing (--weighting bm25), nothing to scan

    def similarity(self, sums: np.ndarray) -> np.ndarray:
        """``[n, M]`` float64 similarities from the scoring kernels' raw sums ``[n, M]``."""
        return sums.astype(np.float64) * self.scale[None, :]

    def score(self, codes: np.ndarray) -> np.ndarray:
        """``[n, M]`` similarities of documents given by their codes (``[n, L, K]``), outside any index;
        without their BM25 part (``Selector.score_texts`` adds it)."""
        return self.similarity(score_codes(codes, self.table, self.layers, self.top_k))

    def weights(self) -> np.ndarray:
        """``[M, L_sel, N]``: per-layer weights that sum to one (the paper's f, or its variant),
        or the classifier's signed coefficients."""
        return np.moveaxis(self.table, 2, 0) * (self.scale * len(self.layers))[:, None, None]


def slot_counts(codes: np.ndarray, neurons: int, layers: np.ndarray, top_k: int) -> np.ndarray:
    """``[L_sel, N]``: in how many of ``codes``' NAGs each (layer, neuron) slot is."""
    sub = codes[:, layers, :top_k].astype(np.int64)
    flat = sub + (np.arange(len(layers), dtype=np.int64) * neurons)[None, :, None]
    return np.bincount(flat.ravel(), minlength=len(layers) * neurons).reshape(len(layers), neurons).astype(np.float64)


def build_profiles(groups: dict[str, np.ndarray], neurons: int, num_layers: int, index_top_k: int,
                   spec: ScoreSpec, pool_df: np.ndarray | None = None, pool_size: int = 0,
                   negatives: np.ndarray | None = None) -> Profiles:
    """Profiles of named groups of target codes ``[T, L, K]``; ``negatives``: the codes of the
    pool sample that ``classifier`` learns against."""
    layers = np.asarray(spec.layers if spec.layers is not None else range(num_layers), dtype=np.int64)
    top_k = spec.top_k or index_top_k
    if not 1 <= top_k <= index_top_k:
        raise NagindexError(f"--top-k {top_k}: the index holds K = {index_top_k}; choose 1..{index_top_k}")
    if spec.weighting not in WEIGHTINGS:
        raise NagindexError(f"--weighting {spec.weighting}: choose from {', '.join(WEIGHTINGS)}")
    if spec.power <= 0:
        raise NagindexError(f"--power {spec.power}: must be positive")
    names = list(groups)
    counts = np.stack([slot_counts(groups[n], neurons, layers, top_k) for n in names])
    examples = np.array([len(groups[n]) for n in names], dtype=np.int64)
    L = len(layers)
    if spec.weighting == "paper" and spec.power == 1.0:
        table = counts
        scale = 1.0 / (examples * top_k * L)
    elif spec.weighting == "classifier":
        if spec.power != 1.0:
            raise NagindexError("--power applies to frequency weightings, not to --weighting classifier")
        if negatives is None:
            raise NagindexError("--weighting classifier needs a sample of pool documents to learn against")
        table = fit_weights(groups, negatives, neurons, layers, top_k, spec.c)
        scale = np.full(len(names), 1.0 / L)
    else:
        w = (counts / (examples * top_k)[:, None, None]) ** spec.power
        if spec.weighting == "idf":
            if pool_df is None:
                raise NagindexError("this index holds no pool statistics for idf weighting; rebuild it")
            df = (pool_df[layers] + 1.0) / (pool_size + 1.0)
            w = w / df[None]
        w = w / np.maximum(w.sum(-1, keepdims=True), np.finfo(np.float64).tiny)
        table = w
        scale = np.full(len(names), 1.0 / L)
    return Profiles(names, np.ascontiguousarray(np.moveaxis(table, 0, 2), dtype=np.float32),
                    np.asarray(scale, np.float64), layers, top_k, counts, examples)
