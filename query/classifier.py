"""A learned weighting: a logistic regression over NAG slots, the target against the pool.

The paper's profile is the centroid of the target's bitsets; it describes the
target, including the neurons that fire for almost any text. Because a
document's score is linear in its bitset, any weight table over the (layer,
neuron) slots is scored exactly by the same kernels, so the table can instead
be learned to *separate* the target from the pool: per target, an
L2-regularised logistic regression whose positives are the target's examples
and whose negatives are a uniform random sample of pool documents read back
from the index. Its signed coefficients are the table: a slot that the target
shares with most of the pool gets a weight near zero, one the target lacks a
negative one.

The features are the bitsets over the selected layers x neurons, keeping each
layer's first ``top_k`` codes, as a ``scipy.sparse`` CSR matrix (``L_sel x
top_k`` ones per row). Classes are balanced (a handful of examples against
thousands of documents), and the regularisation strength is chosen per target
by stratified cross-validation over the examples (average precision, as a
selection keeps the top of the ranking), so no corpus needs its own setting.
Everything is deterministic for a given seed.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp

from nagindex.errors import NagindexError

DEFAULT_NEGATIVES = 4096
CS = np.logspace(-3, 2, 6)    # inverse regularisation strengths tried by cross-validation
FOLDS = 3                     # at most; fewer when a target has fewer examples
DEFAULT_C = 1.0               # for a target with too few examples to cross-validate


def sample_rows(documents: int, count: int, seed: int = 0) -> np.ndarray:
    """Sorted rows of a uniform sample of ``count`` pool documents (all of them if the pool is smaller)."""
    if count < 1:
        raise NagindexError(f"--negatives {count}: must be at least 1")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(documents, size=min(count, documents), replace=False)).astype(np.int64)


def bitsets(codes: np.ndarray, neurons: int, layers: np.ndarray, top_k: int) -> sp.csr_matrix:
    """``[n, L_sel * N]`` CSR bitsets of documents' codes ``[n, L, K]``: slot ``j * N + code`` of layer ``layers[j]``."""
    sub = codes[:, layers, :top_k].astype(np.int64)
    cols = (sub + (np.arange(len(layers), dtype=np.int64) * neurons)[None, :, None]).reshape(len(codes), -1)
    indptr = np.arange(0, cols.size + 1, cols.shape[1], dtype=np.int64)
    return sp.csr_matrix((np.ones(cols.size, np.float32), cols.ravel(), indptr),
                         shape=(len(codes), len(layers) * neurons))


def fit_weights(groups: dict[str, np.ndarray], negatives: np.ndarray, neurons: int, layers: np.ndarray,
                top_k: int, c: float | None = None) -> np.ndarray:
    """``[M, L_sel, N]`` float64: each target's coefficients against the same pool sample.

    ``groups`` maps target names to their examples' codes ``[T, L, K]``;
    ``negatives`` are the sampled pool documents' codes ``[n, L, K]``; ``c``: the
    inverse regularisation strength, or None to cross-validate it per target
    (a fixed one fits about twenty times faster).
    """
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    if not len(negatives):
        raise NagindexError("--weighting classifier needs pool documents to learn against; the index is empty")
    pool = bitsets(negatives, neurons, layers, top_k)
    out = np.zeros((len(groups), len(layers), neurons))
    for m, codes in enumerate(groups.values()):
        x = sp.vstack([bitsets(codes, neurons, layers, top_k), pool], format="csr")
        y = np.r_[np.ones(len(codes)), np.zeros(pool.shape[0])]
        folds = min(FOLDS, len(codes))
        if c is None and folds >= 2:
            model = LogisticRegressionCV(Cs=CS, cv=StratifiedKFold(folds), scoring="average_precision", l1_ratios=(0.0,),
                                         use_legacy_attributes=False,
                                         class_weight="balanced", max_iter=1000)
        else:
            # One C: liblinear fits it several times faster than lbfgs at a strong regularisation. It
            # penalises the intercept as well, which a uniform shift of the coefficients stands in for
            # (every bitset has the same number of ones), so the ranking is all but unchanged.
            model = LogisticRegression(C=DEFAULT_C if c is None else c, class_weight="balanced", max_iter=1000,
                                       solver="liblinear")
        with warnings.catch_warnings():
            # A weak C may stop short of full convergence; its ranking is what counts, not the last digits.
            warnings.simplefilter("ignore", category=UserWarning)
            model.fit(x, y)
        out[m] = model.coef_[0].reshape(len(layers), neurons)
    return out
