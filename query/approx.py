"""Approximate search: FAISS candidates, re-scored exactly from the codes.

Each shard's FAISS file holds one vector per document (nagindex.sketch). A
target's budget takes some k documents (for a token budget: its tokens over the
pool's mean document length, with a margin); every shard is asked for the
``oversample x k`` vectors with the largest inner product with the target's
profile vector. The candidates of all targets and shards are re-scored exactly
from their codes, and each target's selection is ``query.select.pick`` over
them: the exact scan's ranking (distance, ties by id) restricted to the
candidates. Every score returned is exact; what is approximate is only whether
each document that belongs in the selection was among the candidates.

The exact scan reads every code of the pool; approximate search reads the FAISS
vectors (a flat index: a fraction of the codes' size; an IVF index: a fraction
of that) and then the codes of its candidates, row by row through a memory
map (``CodeStore.codes_of``). The scan is the right algorithm when the budget
is a large share of the pool, as the paper's 20% is; FAISS is when k is small
against a very large pool. ``choose`` draws that line for ``--search auto``
where tools/bench_faiss.py measured it.
"""
from __future__ import annotations

import math
from functools import cached_property

import faiss
import numpy as np

from nagindex.errors import NagindexError
from nagindex.faiss_index import MAX_K, ivf_of, set_nprobe, to_gpus
from nagindex.index import Index, Shard
from nagindex.sketch import Sketch, SlotMap

from .budget import Budget
from .profile import Profiles
from .scoring import damage_reported, score_codes
from .select import Pick, pick_each, ranking_of

DEFAULT_OVERSAMPLE = 10
PROBE_SHARE = 0.25          # an IVF search visits at least this share of the lists,
LIST_COVER = 2              # and at least those holding twice the candidates it is asked for
TOKEN_MARGIN = 1.5          # documents planned for a token budget, over its tokens / the mean document length
AUTO_MIN_POOL = 1_000_000   # below, the exact scan takes about a second
AUTO_MAX_SHARE = 0.10       # auto approximates while the candidates planned are at most this share of the pool:
                            # measured 12.5x faster than the scan at 0.4%, 3.3x at 4%, 1.2x at 40% (10^7 documents)


def planned_documents(budgets: list[Budget], index: Index) -> list[int]:
    """How many documents each budget is expected to take, from the mean document length of ``index``."""
    mean = max(index.total_tokens / index.documents, 1.0) if index.documents else 1.0
    return [b.documents if b.documents is not None else max(1, math.ceil(b.tokens / mean * TOKEN_MARGIN))
            for b in budgets]


def choose(documents: int, shards: list[int], oversample: int = DEFAULT_OVERSAMPLE) -> str:
    """``auto``'s search for selecting ``documents`` (all targets together) from shards of these sizes.

    Every shard is asked for ``oversample`` times the documents, as any shard
    may hold all of the best, so what approximate search re-scores grows with
    the number of shards as well as with k.
    """
    pool = sum(shards)
    scored = sum(min(size, oversample * documents) for size in shards)
    return "approx" if pool >= AUTO_MIN_POOL and scored <= AUTO_MAX_SHARE * pool else "exact"


def _blocker(index: Index, neuron_type: str, with_quality: bool) -> str | None:
    """Why approximate search cannot serve a query, None if it can."""
    vectors = (index.manifest["vectors"] or {}).get("neuron_type")
    if with_quality:
        return "--quality-field is normalised over the whole pool, which only the exact scan scores"
    if vectors is None:
        return f"{index.path} has no FAISS vectors (it was written for the exact scan alone)"
    if neuron_type != vectors:
        return f"the index's FAISS vectors are of {vectors}, not {neuron_type}"
    return None


def check_search(search: str, index: Index, neuron_type: str, with_quality: bool) -> None:
    """Refuse ``--search approx`` that ``index`` cannot serve, before the targets' forward pass is spent.

    Args:
        search: ``auto``, ``exact`` or ``approx``; only ``approx`` can be refused.
        index: the index queried.
        neuron_type: the neuron type scored.
        with_quality: a quality field is combined with the distance.
    """
    if search == "approx" and (blocker := _blocker(index, neuron_type, with_quality)):
        raise NagindexError(f"--search approx: {blocker}; use --search exact")


def resolve(search: str, index: Index, budgets: list[Budget], neuron_type: str, with_quality: bool,
            oversample: int = DEFAULT_OVERSAMPLE) -> str:
    """``exact`` or ``approx`` for one query; says why approx cannot serve it if asked for."""
    if search == "exact":
        return "exact"
    check_search(search, index, neuron_type, with_quality)
    if search == "approx":
        return "approx"
    if _blocker(index, neuron_type, with_quality):
        return "exact"
    return choose(sum(planned_documents(budgets, index)), [s.documents for s in index.shards], oversample)


class ApproxSearch:
    """Candidate search over one index's FAISS files, opened once and kept for later queries;
    ``gpus``: search on the GPUs where FAISS can."""

    def __init__(self, index: Index, gpus: bool = True):
        self.index = index
        self.gpus = gpus
        vectors = index.manifest["vectors"]
        self.neuron_type: str = vectors["neuron_type"]
        self.sketch = Sketch.from_dict(vectors["sketch"])

    @cached_property
    def _shards(self) -> list[tuple[Shard, faiss.Index, SlotMap]]:
        """Memory-mapped where the installed FAISS can (flat codes): concurrent queries then share
        one copy in the page cache instead of each reading its own."""
        flags = getattr(faiss, "IO_FLAG_MMAP_IFC", 0) | faiss.IO_FLAG_READ_ONLY
        return [(s, s.vectors(flags), self.sketch.shard_layout(s.store, self.neuron_type))
                for s in self.index.shards]

    @cached_property
    def gpu_copies(self) -> list[faiss.Index | None]:
        """Per shard, its vectors copied to the GPUs where FAISS can (nagindex.faiss_index), else None:
        where approximate search runs."""
        return [to_gpus(vectors) if self.gpus else None for _, vectors, _ in self._shards]

    def candidates(self, profiles: Profiles, counts: list[int], nprobe: int | None = None) -> np.ndarray:
        """Sorted global rows: for each target ``m``, every shard's ``counts[m]`` best by vector."""
        weights = np.zeros((len(profiles.names), self.sketch.layers, self.sketch.neurons), np.float32)
        weights[:, profiles.layers] = profiles.weights()
        found = [np.zeros(0, np.int64)]
        for (shard, vectors, layout), on_gpus in zip(self._shards, self.gpu_copies):
            k = min(max(counts), shard.documents)
            if k == 0:
                continue
            _, labels = searcher(vectors, on_gpus, k, nprobe).search(layout.profiles(weights), k)
            for m, count in enumerate(counts):
                mine = labels[m, :count]
                found.append(shard.offset + mine[mine >= 0])
        return np.unique(np.concatenate(found))

    def _rescored(self, profiles: Profiles, rows: np.ndarray) -> np.ndarray:
        """The candidates' raw sums ``[len(rows), M]``, scored shard by shard as their codes are stored, so
        that they are the very sums the exact scan gives them."""
        sums = np.empty((len(rows), profiles.table.shape[2]), np.float32)
        for at, codes in self.index.stored_of(self.neuron_type, rows):
            with damage_reported(lambda e: self.index.damaged_code(e, self.neuron_type, rows[at])):
                sums[at] = score_codes(codes, profiles.table, profiles.layers, profiles.top_k)
        return sums

    def select(self, profiles: Profiles, budgets: list[Budget], oversample: int = DEFAULT_OVERSAMPLE,
               nprobe: int | None = None, dedup: bool = False
               ) -> tuple[list[Pick], list[np.ndarray], list[int], int]:
        """Each target's pick among the candidates, their exact similarities, how deep each
        looked into its ranking (``query.select.pick_each``), and how many candidates were scored.

        A target whose pick looks deeper into its ranking than planned (short
        documents at the top of a token budget, or, with ``dedup``, documents
        an earlier target took), or takes all the candidates, is planned again
        from what it took, until the candidates suffice or cover the pool.
        """
        if oversample < 1 or (nprobe is not None and nprobe < 1):
            raise NagindexError("--oversample and --nprobe must be at least 1")
        n = self.index.documents
        planned = planned_documents(budgets, self.index)
        scored = -1
        while True:
            rows = self.candidates(profiles, [oversample * p for p in planned], nprobe)
            sims = profiles.similarity(self._rescored(profiles, rows))
            tokens = self.index.tokens[rows]
            rankings = [ranking_of(rows, 1.0 - sims[:, m], self.index.ids_of, tokens) for m in range(len(budgets))]
            picks, depths = pick_each(rankings, budgets, self.index.tokens.__getitem__, dedup)
            short = [m for m, p in enumerate(picks) if p.exhausted or depths[m] > planned[m]]
            if not short or len(rows) in (n, scored):
                break
            scored = len(rows)
            for m in short:
                planned[m] = math.ceil(max(depths[m], planned[m]) * TOKEN_MARGIN)
        whole = len(rows) == n
        return ([Pick(p.rows, p.distance, p.exhausted and whole) for p in picks],
                [sims[np.searchsorted(rows, p.rows), m] for m, p in enumerate(picks)], depths, len(rows))


def searcher(vectors: faiss.Index, on_gpus: faiss.Index | None, k: int, nprobe: int | None) -> faiss.Index:
    """The copy of a shard's vectors to ask for ``k`` results, with the IVF lists it visits set:
    the GPUs' where there is one and FAISS's GPU limits allow, else the CPU's."""
    ivf = ivf_of(vectors)
    probe = 0
    if ivf is not None:
        cover = math.ceil(max(PROBE_SHARE * ivf.nlist, LIST_COVER * k * ivf.nlist / max(ivf.ntotal, 1)))
        probe = ivf.nprobe = min(ivf.nlist, nprobe or cover)
    if on_gpus is None or max(k, probe) > MAX_K:
        return vectors
    if probe:
        set_nprobe(on_gpus, probe)
    return on_gpus
