"""BM25 of the pool against each target, from the term statistics a build kept (docs/design.md §1.3, §2.4).

A target's BM25 score of a document is the mean, over the target's examples,
of bm25s's score with the example as the query (``BM25`` with its defaults:
Lucene's variant, k1 = 1.5, b = 0.75), as the baseline
``nagindex.analyses.baselines.bm25_scores`` computes it. A query's score is a
sum over its terms (repeated terms counting again), so the mean is one weight
per term: the term's mean count over the examples. A shard's scores for every
target are then one sparse product, ``[documents, terms] @ [terms, targets]``,
over the postings of the targets' terms alone.

idf and the average document length are the whole pool's: every shard's
document frequencies and lengths added up (what Elasticsearch's
``dfs_query_then_fetch`` does), so a document's score does not depend on the
shard that holds it and an index built in parts ranks as one built whole.
bm25s's own scoring functions compute each term's idf and each posting's
term-frequency part.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import scipy.sparse as sp

from nagindex.errors import NagindexError
from nagindex.index import Index, Shard
from nagindex.terms import TermStats, tokenize

NO_TERMS = "this index has no term statistics; rebuild with --terms"


def term_stats(index: Index) -> dict[str, TermStats]:
    """Each shard's term statistics, by shard name."""
    return {s.name: TermStats(s.dir.terms) for s in index.shards}


def check_terms(index: Index) -> None:
    if not index.manifest.get("terms"):
        raise NagindexError(f"--weighting bm25: {index.path}: {NO_TERMS}")


class Bm25:
    """The BM25 scores of each target (examples' texts as the backbone reads them) over one index."""

    def __init__(self, index: Index, groups: dict[str, list[str]], stats: dict[str, TermStats] | None = None):
        """``groups``: target name -> its examples' texts; ``stats``: the shards' :func:`term_stats`, read once
        for several instances."""
        check_terms(index)
        import bm25s
        from bm25s.scoring import _score_idf_lucene, _score_tfc_lucene

        params = bm25s.BM25()
        self.k1, self.b, self._tfc = params.k1, params.b, _score_tfc_lucene
        self.index = index
        self.names = list(groups)
        counts = [Counter(t for doc in tokenize(texts) for t in doc) for texts in groups.values()]
        self.terms = sorted(set().union(*counts)) if counts else []
        at = {t: i for i, t in enumerate(self.terms)}
        self.weights = np.zeros((len(self.terms), len(self.names)))      # [terms, M]: mean count per example
        for m, (c, texts) in enumerate(zip(counts, groups.values())):
            for t, n in c.items():
                self.weights[at[t], m] = n / max(len(texts), 1)
        self._stats = stats if stats is not None else term_stats(index)
        stats = self._stats.values()
        df = sum((s.document_frequencies(self.terms) for s in stats), np.zeros(len(self.terms), np.int64))
        self.avgdl = sum(int(s.lengths.sum()) for s in stats) / max(index.documents, 1)
        self._current: tuple[str, np.ndarray] | None = None     # the shard a scan is in, and its scores
        # bm25s leaves out query terms its vocabulary lacks: a term no document holds weighs nothing.
        self.idf = np.array([_score_idf_lucene(int(d), index.documents) if d else 0.0 for d in df])

    def _tf_part(self, counts: sp.csc_matrix, lengths: np.ndarray) -> sp.csc_matrix:
        """``idf * tfc`` for every posting of ``counts`` ``[documents, terms]``, the documents' ``lengths`` given."""
        coo = counts.tocoo()
        values = self._tfc(coo.data, lengths[coo.row], self.avgdl, self.k1, self.b) * self.idf[coo.col]
        return sp.csc_matrix((values, (coo.row, coo.col)), shape=counts.shape)

    def _shard_matrix(self, shard: Shard) -> sp.csc_matrix:
        stats = self._stats[shard.name]
        return self._tf_part(stats.columns(self.terms), stats.lengths)

    def shard_scores(self, shard: Shard) -> np.ndarray:
        """``[documents of the shard, M]`` float64: every target's BM25 score of each of the shard's documents."""
        return np.asarray(self._shard_matrix(shard) @ self.weights)

    def rows_matrix(self, rows: np.ndarray) -> sp.csr_matrix:
        """``[len(rows), terms]``: ``idf * tfc`` of the targets' terms in the pool documents of global ``rows``
        (ascending), as :meth:`texts_matrix` gives it for other texts."""
        parts = []
        for shard, mask in self.index.locate(rows):
            stats, local = self._stats[shard.name], rows[mask] - shard.offset
            parts.append(self._tf_part(stats.columns(self.terms, local), stats.lengths[local]).tocsr())
        return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, len(self.terms)))

    def example_counts(self, texts: list[str]) -> np.ndarray:
        """``[len(texts), terms]``: how often each of the targets' terms is in each text, the weights one
        text gives its terms as a query."""
        at = {t: i for i, t in enumerate(self.terms)}
        out = np.zeros((len(texts), len(self.terms)))
        for r, doc in enumerate(tokenize(texts)):
            for t in doc:
                if t in at:
                    out[r, at[t]] += 1
        return out

    def texts_scores(self, texts: list[str]) -> np.ndarray:
        """``[len(texts), M]``: the scores of texts outside the pool, as if each were one more pool document
        (the pool's idf and average length)."""
        return self.texts_matrix(texts) @ self.weights

    def texts_matrix(self, texts: list[str]) -> sp.csc_matrix:
        """``[len(texts), terms]``: ``idf * tfc`` of the targets' terms in each of ``texts``: scores are its
        product with any per-term weights (auto's folds weigh the terms of their own examples)."""
        at = {t: i for i, t in enumerate(self.terms)}
        rows, cols, lengths = [], [], []
        for r, doc in enumerate(tokenize(texts)):
            lengths.append(len(doc))
            for t in doc:
                if t in at:
                    rows.append(r)
                    cols.append(at[t])
        counts = sp.csc_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(texts), len(self.terms)))
        counts.sum_duplicates()
        return self._tf_part(counts, np.array(lengths, np.int64))

    def rows(self, first_row: int, n: int) -> np.ndarray:
        """``[n, M]``: the scores of global rows ``first_row .. first_row + n`` (within one shard), each
        shard's scored once, as a scan reaches it."""
        shard = next(s for s in self.index.shards if s.offset <= first_row < s.offset + s.documents)
        if self._current is None or self._current[0] != shard.name:
            self._current = shard.name, self.shard_scores(shard)
        start = first_row - shard.offset
        return self._current[1][start:start + n]
