"""Term statistics for BM25: the one owner of their format, in part files and in a shard's ``terms.h5``.

A build with ``--terms`` tokenizes each document's text as far as the backbone
reads it (``Extractor.truncate``) with bm25s's tokenizer (lower case, its
word pattern, English stopwords: ``bm25s.tokenize(..., stopwords="en")``, as the
BM25 baseline does) and keeps each document's term counts (docs/design.md
§2.4). They are raw counts, not bm25s's score matrix: BM25's idf and average
document length are properties of the whole pool, which independent
``--shard`` workers never see, so scores are computed at query time from every
shard's counts together (``query.bm25``) and a sharded build ranks as a whole
one does.

In a part file, group ``terms``: ``vocab`` (the window's terms, sorted, as UTF-8
joined by newlines), ``indptr`` int64 ``[n + 1]``, ``ids`` uint32 and ``counts``
uint32 (document-major: document ``d``'s terms are ``ids[indptr[d]:indptr[d+1]]``).

A shard's ``terms.h5`` is term-major, so a query reads only its terms'
postings: ``vocab`` as above (the shard's terms, sorted), ``indptr`` int64
``[V + 1]``, ``rows`` uint32 and ``counts`` uint32 (term ``t``'s documents and
counts are ``rows[indptr[t]:indptr[t+1]]``, rows ascending), ``lengths``
uint32 ``[n]`` (each document's number of terms). Every dataset carries HDF5's
fletcher32 checksum.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import scipy.sparse as sp

from .atomic import atomic_path
from .errors import IndexStateError, NagindexError

#: What the header records of an index with term statistics: how its texts were tokenized.
TOKENIZER = {"tokenizer": "bm25s", "stopwords": "en"}
GROUP = "terms"


def _bm25s():
    try:
        import bm25s
    except ImportError:
        raise NagindexError("term statistics need the bm25s package: pip install bm25s") from None
    return bm25s


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Each text's terms, as bm25s tokenizes it for the BM25 baseline (stopwords removed, in text order)."""
    if not texts:
        return []
    return _bm25s().tokenize(list(texts), stopwords=TOKENIZER["stopwords"], return_ids=False, show_progress=False)


@dataclass
class Counts:
    """Term counts of a run of documents, document-major: ``vocab`` sorted, ``matrix`` CSR ``[documents, V]``."""

    vocab: list[str]
    matrix: sp.csr_matrix

    @classmethod
    def of(cls, texts: Sequence[str]) -> "Counts":
        terms = tokenize(texts)
        vocab = sorted({t for doc in terms for t in doc})
        at = {t: i for i, t in enumerate(vocab)}
        indptr = np.zeros(len(terms) + 1, np.int64)
        np.cumsum([len(doc) for doc in terms], out=indptr[1:])
        ids = np.fromiter((at[t] for doc in terms for t in doc), np.int64, int(indptr[-1]))
        matrix = sp.csr_matrix((np.ones(len(ids), np.uint32), ids, indptr), shape=(len(terms), len(vocab)))
        matrix.sum_duplicates()
        return cls(vocab, matrix)


def _put(group: h5py.Group, name: str, data: np.ndarray) -> None:
    """A dataset with HDF5's checksum (an empty one cannot be chunked, so it goes without)."""
    group.create_dataset(name, data=data, fletcher32=bool(data.size), chunks=True if data.size else None)


def _vocab_bytes(vocab: list[str]) -> np.ndarray:
    return np.frombuffer("\n".join(vocab).encode(), np.uint8)


def _vocab_of(data: np.ndarray) -> list[str]:
    text = data.tobytes().decode()
    return text.split("\n") if text else []


def write_part(path: Path, counts: Counts) -> None:
    """Add a window's term counts to its part file (before the part is renamed into place)."""
    with h5py.File(path, "r+") as f:
        g = f.create_group(GROUP)
        _put(g, "vocab", _vocab_bytes(counts.vocab))
        _put(g, "indptr", counts.matrix.indptr.astype(np.int64))
        _put(g, "ids", counts.matrix.indices.astype(np.uint32))
        _put(g, "counts", counts.matrix.data.astype(np.uint32))


def read_part(path: Path) -> Counts:
    with h5py.File(path, "r") as f:
        if GROUP not in f:
            raise IndexStateError(f"{path}: a part without term statistics in a build with --terms; "
                                  "delete it and rerun the build")
        g = f[GROUP]
        vocab, indptr = _vocab_of(g["vocab"][...]), g["indptr"][...]
        matrix = sp.csr_matrix((g["counts"][...], g["ids"][...], indptr), shape=(len(indptr) - 1, len(vocab)))
    return Counts(vocab, matrix)


def join_parts(parts: Sequence[Path], out: Path) -> None:
    """Write a shard's ``terms.h5`` from its parts' counts, in part order: the same parts give the same file."""
    write_shard(out, [read_part(p) for p in parts])


def write_shard(out: Path, windows: Sequence[Counts]) -> None:
    """Write a shard's ``terms.h5``, atomically, from the counts of its runs of documents, in order."""
    vocab = sorted({t for w in windows for t in w.vocab})
    at = {t: i for i, t in enumerate(vocab)}
    blocks = []
    for w in windows:
        remap = np.fromiter((at[t] for t in w.vocab), np.int64, len(w.vocab))
        m = w.matrix
        blocks.append(sp.csr_matrix((m.data, remap[m.indices], m.indptr), shape=(m.shape[0], len(vocab))))
    matrix = sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, len(vocab)), dtype=np.uint32)
    lengths = np.asarray(matrix.sum(axis=1, dtype=np.int64)).ravel()
    csc = matrix.tocsc()
    csc.sort_indices()
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        _put(f, "vocab", _vocab_bytes(vocab))
        _put(f, "indptr", csc.indptr.astype(np.int64))
        _put(f, "rows", csc.indices.astype(np.uint32))
        _put(f, "counts", csc.data.astype(np.uint32))
        _put(f, "lengths", lengths.astype(np.uint32))


class TermStats:
    """A shard's ``terms.h5``, opened for reading: its vocabulary, document lengths and postings."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def _read(self, name: str) -> np.ndarray:
        try:
            with h5py.File(self.path, "r") as f:
                return f[name][...]
        except (OSError, KeyError) as e:
            raise IndexStateError(f"{self.path}: damaged term statistics ({name}: {e}); build this shard again") from None

    @cached_property
    def vocab(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(_vocab_of(self._read("vocab")))}

    @cached_property
    def indptr(self) -> np.ndarray:
        return self._read("indptr")

    @cached_property
    def lengths(self) -> np.ndarray:
        return self._read("lengths").astype(np.int64)

    def document_frequencies(self, terms: Sequence[str]) -> np.ndarray:
        """In how many of the shard's documents each term is (0 for a term it never saw)."""
        cols = [self.vocab.get(t, -1) for t in terms]
        return np.array([self.indptr[c + 1] - self.indptr[c] if c >= 0 else 0 for c in cols], np.int64)

    def columns(self, terms: Sequence[str], rows: np.ndarray | None = None) -> sp.csc_matrix:
        """The counts of ``terms`` in every document, ``[documents, len(terms)]``, read for those terms alone;
        with ``rows`` (ascending), in those documents alone, ``[len(rows), len(terms)]``."""
        data, found, indptr = [], [], [0]
        with h5py.File(self.path, "r") as f:
            for t in terms:
                c = self.vocab.get(t)
                start, stop = (int(self.indptr[c]), int(self.indptr[c + 1])) if c is not None else (0, 0)
                r, n = f["rows"][start:stop].astype(np.int64), f["counts"][start:stop]
                if rows is not None:
                    at = np.minimum(np.searchsorted(rows, r), max(len(rows) - 1, 0))
                    hit = rows[at] == r if len(rows) else np.zeros(len(r), bool)
                    r, n = at[hit], n[hit]
                found.append(r)
                data.append(n)
                indptr.append(indptr[-1] + len(r))
        cat = (lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt))
        shape = (len(self.lengths) if rows is None else len(rows), len(terms))
        return sp.csc_matrix((cat(data, np.uint32).astype(np.float64), cat(found, np.int64), np.array(indptr)),
                             shape=shape)

    def check(self, documents: int) -> None:
        """Read everything (through HDF5's checksums) and check that it is one consistent matrix."""
        vocab = _vocab_of(self._read("vocab"))
        indptr, rows, counts, lengths = (self._read(n) for n in ("indptr", "rows", "counts", "lengths"))
        problem = None
        if len(lengths) != documents:
            problem = f"{len(lengths)} document lengths for {documents} documents"
        elif vocab != sorted(set(vocab)) or len(indptr) != len(vocab) + 1:
            problem = "the vocabulary is not sorted and unique, or does not match the postings"
        elif indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != len(rows) or len(rows) != len(counts):
            problem = "the postings' offsets are not consistent"
        elif len(rows) and int(rows.max()) >= documents:
            problem = f"a posting names document {int(rows.max())} of {documents}"
        elif not np.array_equal(np.bincount(rows, weights=counts, minlength=documents).astype(np.int64),
                                lengths.astype(np.int64)):
            problem = "the document lengths differ from a recount of the postings"
        if problem:
            raise IndexStateError(f"{self.path}: damaged term statistics ({problem}); build this shard again")
