"""``nagindex query --engine ray``: one Ray task per shard, merged exactly here.

Each task scans its shard's codes and returns, per target, the head of the
shard's own ranking that a selection over the whole pool can reach
(:func:`query.select.candidates`); this process ranks the union by the same
rule (distance, then id) and picks with the same code as a local query. The
result is identical to a local query's, token budgets included, while a
shard's scores never leave its worker: only the candidates travel. Workers
read the shards where the index lies, so the index must be on a file system
every worker sees.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nagindex.cluster import connect, worker_errors
from nagindex.index import CODES, Index
from nagindex.store import CodeStore

from .budget import Budget
from .profile import Profiles
from .scoring import score_stream
from .select import Pick, candidates, pick


def fan_out(index: Index, profiles: Profiles, neuron_type: str, budgets: list[Budget],
            ray_address: str | None = None) -> tuple[list[Pick], list[np.ndarray]]:
    """Each target's pick over the whole index, and the similarities of the picked rows."""
    ray = connect(ray_address)
    task = ray.remote(_shard_candidates)
    shared = ray.put(profiles)
    with worker_errors():
        found = ray.get([task.remote(str(shard.path.absolute()), shared, neuron_type, budgets) for shard in index.shards])
    picks, similarity = [], []
    for m, budget in enumerate(budgets):
        rows = np.concatenate([shard.offset + part[m][0] for shard, part in zip(index.shards, found)])
        sims = np.concatenate([part[m][1] for part in found])
        tokens = np.concatenate([part[m][2] for part in found])
        chosen = pick(1.0 - sims, lambda i: index.ids_of(rows[i]), tokens, budget)
        picks.append(Pick(rows[chosen.rows], chosen.distance, chosen.exhausted))
        similarity.append(sims[chosen.rows])
    return picks, similarity


def _shard_candidates(path: str, profiles: Profiles, neuron_type: str,
                      budgets: list[Budget]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per target: the shard's candidate rows, their similarities and token counts."""
    with CodeStore(Path(path) / CODES) as store:
        sims = profiles.similarity(score_stream(store.iter_codes(neuron_type), store.rows,
                                                profiles.table, profiles.layers, profiles.top_k))
        tokens = store.tokens()
        out = []
        for m, budget in enumerate(budgets):
            rows = candidates(1.0 - sims[:, m], store.ids_of, tokens, budget)
            out.append((rows, sims[rows, m], tokens[rows]))
    return out
