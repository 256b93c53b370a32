"""``nagindex query --engine ray``: Ray tasks score the shards, merged exactly here.

Two rounds. First, one task per shard scans its codes and sends back, per
target, a summary of its distances (``query.select.summarize``: a thousand
bins, whatever the shard's size), while the similarities themselves stay in
the object store on the worker's node. From the summaries this process finds
a distance that bounds the selection over the whole pool
(``query.select.reach``); then one task per shard sends the rows at or below
it. This process ranks their union by the same rule (distance, then id) and
picks with the same code as a local query: the result is identical to a local
query's, token budgets included, and what travels is about the selection,
even for the paper's 20% over many shards. Workers read the shards where the
index lies, so the index must be on a file system every worker sees.
"""
from __future__ import annotations


import numpy as np

from nagindex.cluster import connect, worker_errors
from nagindex.index import Index
from nagindex.store import CodeStore

from .budget import Budget
from .profile import Profiles
from .scoring import damage_reported, score_stream
from .select import Pick, Summary, pick_each, ranking_of, reach, summarize


def fan_out(index: Index, profiles: Profiles, neuron_type: str, budgets: list[Budget], dedup: bool = False,
            ray_address: str | None = None) -> tuple[list[Pick], list[np.ndarray], list[int]]:
    """Each target's pick over the whole index, the similarities of the picked rows, and how deep
    each looked into its ranking (``query.select.pick_each``).

    With ``dedup`` a target may look past what its budget's bound holds (the
    documents an earlier target took are passed over): a target whose ranking
    ran out inside the rows sent, short of the whole pool, asks the shards
    again with a bound for twice as many documents, until what was sent suffices.
    """
    ray = connect(ray_address)
    score, within = ray.remote(num_returns=2)(_score_shard), ray.remote(_within)
    shared = ray.put(profiles)
    paths = [str(shard.dir.codes.absolute()) for shard in index.shards]
    with worker_errors():
        scored = [score.remote(path, shared, neuron_type) for path in paths]
        summaries = ray.get([summary for summary, _ in scored])
        limits = [reach([s[m] for s in summaries], budget) for m, budget in enumerate(budgets)]
        while True:
            found = ray.get([within.remote(path, sims, limits) for path, (_, sims) in zip(paths, scored)])
            rows = [np.concatenate([shard.offset + part[m][0] for shard, part in zip(index.shards, found)])
                    for m in range(len(budgets))]
            sims = [np.concatenate([part[m][1] for part in found]) for m in range(len(budgets))]
            rankings = [ranking_of(rows[m], 1.0 - sims[m], index.ids_of,
                                   np.concatenate([part[m][2] for part in found])) for m in range(len(budgets))]
            picks, depths = pick_each(rankings, budgets, index.tokens.__getitem__, dedup)
            deeper = [m for m, p in enumerate(picks) if p.exhausted and np.isfinite(limits[m])]
            if not dedup or not deeper:
                break
            for m in deeper:
                limits[m] = reach([s[m] for s in summaries], Budget(documents=2 * len(rows[m]) + 1))
    return picks, [sims[m][np.searchsorted(rows[m], p.rows)] for m, p in enumerate(picks)], depths


def _score_shard(path: str, profiles: Profiles, neuron_type: str) -> tuple[list[Summary], np.ndarray]:
    """Per target, the summary of the shard's distances; and its similarities ``[n, M]``, kept for ``_within``."""
    with CodeStore(path) as store:
        with damage_reported(lambda e: store.damaged_code(e, neuron_type, e.row)):
            sums = score_stream(store.iter_stored(neuron_type), store.rows, profiles.table, profiles.layers,
                                profiles.top_k)
        sims = profiles.similarity(sums)
        tokens = store.tokens()
    return [summarize(1.0 - sims[:, m], tokens) for m in range(sims.shape[1])], sims


def _within(path: str, sims: np.ndarray, limits: list[float]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per target: the shard's rows at or below its limit, their similarities and token counts."""
    with CodeStore(path) as store:
        tokens = store.tokens()
    out = []
    for m, limit in enumerate(limits):
        rows = np.flatnonzero(1.0 - sims[:, m] <= limit)
        out.append((rows, sims[rows, m], tokens[rows]))
    return out
