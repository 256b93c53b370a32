"""From distances to a selection: rank ascending, then fill the budget.

The ranking is the paper's: ascending distance, ties broken by document id.
A full sort of a billion distances is wasteful when the budget keeps a small
share, so the order is built only as far as the budget reaches: partition
around a threshold, sort the part below it (by distance, then id), and widen
the part if a token budget needs more.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .budget import Budget


@dataclass
class Pick:
    """One target's selection, best first."""

    rows: np.ndarray          # int64 global rows
    distance: np.ndarray      # float64
    exhausted: bool           # the budget was larger than the pool


IdsOf = Callable[[np.ndarray], np.ndarray]


def ranked_prefix(distance: np.ndarray, ids_of: IdsOf, count: int) -> np.ndarray:
    """Rows of the ``count`` best documents in ranking order (distance, then id).

    Ids are fetched only for documents tied with a neighbour: on a large pool
    they are few, and reading every id would cost more than the scoring.
    """
    n = len(distance)
    count = min(count, n)
    if count == 0:
        return np.zeros(0, np.int64)
    if count < n:
        threshold = np.partition(distance, count - 1)[count - 1]
        candidates = np.flatnonzero(distance <= threshold)   # every tie at the boundary
    else:
        candidates = np.arange(n)
    candidates = candidates[np.argsort(distance[candidates], kind="stable")]
    d = distance[candidates]
    tied = np.zeros(len(d), bool)
    tied[1:] |= d[1:] == d[:-1]
    tied[:-1] |= d[1:] == d[:-1]
    if tied.any():
        keys = np.full(len(d), "", dtype=object)
        keys[tied] = ids_of(candidates[tied])
        candidates = candidates[np.lexsort((keys.astype(str), d))]
    return candidates[:count].astype(np.int64)


def pick(distance: np.ndarray, ids_of: IdsOf, tokens: np.ndarray, budget: Budget) -> Pick:
    """The paper's selection: best first, while the running token count fits.

    If even the best document does not fit a token budget, it is kept alone.
    """
    n = len(distance)
    if budget.documents is not None:
        rows = ranked_prefix(distance, ids_of, budget.documents)
        return Pick(rows, distance[rows], budget.documents >= n)
    if budget.tokens >= tokens.sum():
        rows = ranked_prefix(distance, ids_of, n)
        return Pick(rows, distance[rows], True)
    rows, fit = _token_prefix(distance, ids_of, tokens, budget.tokens)
    rows = rows[: max(fit, 1)]
    return Pick(rows, distance[rows], False)


Ranking = Callable[[Budget], Pick]     # one target's ``pick`` over its ranking, in global rows


def ranking_of(rows: np.ndarray, distance: np.ndarray, ids_of: IdsOf, tokens: np.ndarray) -> Ranking:
    """The ranking of some of the pool's documents: global ``rows`` with their distances and tokens.

    Ties are broken by the ids of the rows, as over the whole pool, so the
    ranking of a part that holds every document up to some distance is a
    prefix of the whole pool's.
    """
    def rank(budget: Budget) -> Pick:
        chosen = pick(distance, lambda at: ids_of(rows[at]), tokens, budget)
        return Pick(rows[chosen.rows], chosen.distance, chosen.exhausted)
    return rank


def pick_each(rankings: list[Ranking], budgets: list[Budget], tokens_of: Callable[[np.ndarray], np.ndarray],
              dedup: bool = False) -> tuple[list[Pick], list[int]]:
    """Every target's pick, and how deep into its ranking it looked.

    With ``dedup`` the targets pick in order and each passes over the
    documents that earlier ones took, filling its own share with the next
    best of its own ranking instead: every target still gets its whole
    budget, where removing repeats afterwards would starve the later ones.
    """
    taken = np.zeros(0, np.int64)
    picks, depths = [], []
    for rank, budget in zip(rankings, budgets):
        chosen, depth = refill(rank, budget, taken, tokens_of) if dedup and len(taken) else _plain(rank, budget)
        picks.append(chosen)
        depths.append(depth)
        if dedup:
            taken = np.union1d(taken, chosen.rows)
    return picks, depths


def _plain(rank: Ranking, budget: Budget) -> tuple[Pick, int]:
    chosen = rank(budget)
    return chosen, len(chosen.rows)


def refill(rank: Ranking, budget: Budget, taken: np.ndarray, tokens_of: Callable[[np.ndarray], np.ndarray]
           ) -> tuple[Pick, int]:
    """``pick`` over the ranking with the rows ``taken`` (sorted) left out; and the prefix it looked at.

    The ranking is read as prefixes of growing length, asked of ``rank`` as
    document budgets: the rows left out only ever push the selection deeper.
    The pick is ``exhausted`` when the ranking ran out before the budget did.
    """
    first = rank(budget)
    free = ~np.isin(first.rows, taken)
    if free.all():
        return first, len(first.rows)
    ask = len(first.rows) + int((~free).sum())
    while True:
        prefix = rank(Budget(documents=ask))
        free = np.flatnonzero(~np.isin(prefix.rows, taken))
        if budget.documents is not None:
            enough = len(free) >= budget.documents
            keep = free[:budget.documents]
        else:
            fits = np.cumsum(tokens_of(prefix.rows[free])) <= budget.tokens
            enough = not fits.all()
            keep = free[:max(int(np.argmin(fits)) if enough else len(free), 1)]
        if enough or prefix.exhausted:
            depth = int(keep[-1]) + 1 if len(keep) else len(prefix.rows)
            return Pick(prefix.rows[keep], prefix.distance[keep], prefix.exhausted and len(free) == len(keep)), depth
        ask = max(ask + 1, 2 * ask)


@dataclass
class Summary:
    """One part of a pool's distances to a target, in bins: each bin's upper edge, documents and tokens."""

    edges: np.ndarray         # float64, ascending
    documents: np.ndarray     # int64
    tokens: np.ndarray        # int64


def summarize(distance: np.ndarray, tokens: np.ndarray, bins: int = 1024) -> Summary:
    """Bins spread evenly over the part's own range: small to send, whatever the part's size."""
    if not len(distance):
        return Summary(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))
    edges = np.linspace(distance.min(), distance.max(), bins + 1)[1:]
    at = np.minimum(np.searchsorted(edges, distance), bins - 1)      # distance <= edges[at]
    return Summary(edges, np.bincount(at, minlength=bins),
                   np.bincount(at, weights=tokens, minlength=bins).astype(np.int64))


def reach(summaries: list[Summary], budget: Budget) -> float:
    """A distance that bounds what ``pick`` over the whole pool can reach, from its parts' summaries.

    The rows of every part at or below it hold more documents (for a token
    budget, more tokens) than the budget: the selection is a prefix of the
    ranking, so they hold all of it and the first row beyond it, and ``pick``
    over them is ``pick`` over the whole pool, the "covers the whole pool" flag
    included. Every bin counts at its upper edge, so the bound is safe and is
    loose by at most one bin per part. Infinite when the budget takes the pool.
    """
    edges = np.concatenate([s.edges for s in summaries])
    amount = np.concatenate([s.documents if budget.documents is not None else s.tokens for s in summaries])
    order = np.argsort(edges, kind="stable")
    limit = budget.documents if budget.documents is not None else budget.tokens
    past = np.flatnonzero(np.cumsum(amount[order]) > limit)
    return float(edges[order[past[0]]]) if len(past) else np.inf


def _token_prefix(distance: np.ndarray, ids_of: IdsOf, tokens: np.ndarray, limit: int) -> tuple[np.ndarray, int]:
    """Ranked rows reaching past ``limit`` tokens (or all rows), and how many of them fit."""
    n = len(distance)
    guess = max(1, int(limit / max(tokens.mean(), 1) * 1.25))
    while True:
        rows = ranked_prefix(distance, ids_of, guess)
        fits = np.cumsum(tokens[rows]) <= limit
        if not fits.all() or guess >= n:
            return rows, int(np.argmin(fits)) if not fits.all() else len(rows)
        guess = min(n, guess * 2)


#: Kept candidates of one target below which a stream does not bother pruning.
PRUNE_FLOOR = 1 << 16


class Stream:
    """One target's selection, gathered while the pool's scores stream by, chunk by chunk.

    The selection is a prefix of the ranking, so a document can be dropped as
    soon as the documents already kept and better than it (ties included) hold
    the budget: ``k`` documents, or more tokens than the budget. That distance
    is the running bound; what is kept is every document at or below it, and
    :func:`pick` over those is :func:`pick` over the whole pool, ties by id,
    the "covers the whole pool" flag and the lone first document included.
    Memory grows with the selection (at most about twice it, plus a chunk),
    not with the pool: the token counts of a token budget are read for the
    rows kept only.

    ``tokens_of`` gives the token counts of global rows; ``documents`` and
    ``pool_tokens`` are the pool's; ``floor`` is how many candidates are kept
    before the first pruning.
    """

    def __init__(self, budget: Budget, tokens_of: Callable[[np.ndarray], np.ndarray], documents: int,
                 pool_tokens: int, floor: int = PRUNE_FLOOR):
        self.budget, self.tokens_of = budget, tokens_of
        self.whole = budget.documents >= documents if budget.documents is not None else budget.tokens >= pool_tokens
        self.rows: list[np.ndarray] = []
        self.similarity: list[np.ndarray] = []
        self.tokens: list[np.ndarray] = []     # of the rows kept, for a token budget
        self.kept = 0
        self.bound = np.inf
        self.prune_at = max(floor, 2 * (budget.documents or 0))

    def add(self, first_row: int, similarity: np.ndarray) -> None:
        """The float64 similarities of rows ``first_row ..`` (distance is ``1 - similarity``)."""
        keep = np.flatnonzero(1.0 - similarity <= self.bound)
        self.rows.append(keep + first_row)
        self.similarity.append(similarity[keep])
        if self.budget.documents is None:
            self.tokens.append(self.tokens_of(self.rows[-1]))
        self.kept += len(keep)
        if self.kept > self.prune_at and not self.whole:
            self._prune()

    def _prune(self) -> None:
        rows, sims, tokens = self._joined()
        distance = 1.0 - sims
        if self.budget.documents is not None:
            self.bound = float(np.partition(distance, self.budget.documents - 1)[self.budget.documents - 1])
        else:
            order = np.argsort(distance, kind="stable")
            past = np.flatnonzero(np.cumsum(tokens[order]) > self.budget.tokens)
            if len(past):
                self.bound = float(distance[order[past[0]]])
        keep = distance <= self.bound
        self.rows, self.similarity = [rows[keep]], [sims[keep]]
        self.tokens = [tokens[keep]] if self.budget.documents is None else []
        self.kept = int(keep.sum())
        self.prune_at = max(self.prune_at, 2 * self.kept)

    def _joined(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows kept, their similarities and (for a token budget) their token counts."""
        rows = np.concatenate(self.rows) if self.rows else np.zeros(0, np.int64)
        sims = np.concatenate(self.similarity) if self.similarity else np.zeros(0)
        tokens = np.concatenate(self.tokens) if self.tokens else np.zeros(0, np.int64)
        return rows, sims, tokens

    def pick(self, ids_of: IdsOf) -> tuple[Pick, np.ndarray]:
        """The selection and the similarities of its rows."""
        rows, sims, tokens = self._joined()
        local = pick(1.0 - sims, lambda r: ids_of(rows[r]), tokens, self.budget)   # tokens: for a token budget
        return Pick(rows[local.rows], local.distance, self.whole), sims[local.rows]
