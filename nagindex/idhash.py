"""Stable 64-bit hashes of document ids, and a shard's ids sorted by them: duplicate ids found in O(one shard).

An index refuses an id held twice (a build, an append, a merge). Holding
every id of a pool to check that grows with it (a hundred bytes an id as a
Python string, 8 as Python's ``hash``, which is salted per process and so
cannot be stored). Each shard's store instead keeps the blake2b-64 hash of
each of its ids, sorted, with the row each came from (nagindex.store,
datasets ``id_hashes`` and ``id_hash_rows``); a check reads one shard's
array at a time, and confirms every hash it finds shared by comparing the
ids themselves, so a collision never refuses a valid id (docs/design.md §5).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable

import numpy as np


def stable_hashes(ids: Iterable[str]) -> np.ndarray:
    """uint64: the blake2b-64 hash of each id's utf-8 bytes, the same in every process and on every machine."""
    digests = b"".join(hashlib.blake2b(i.encode("utf-8", "surrogatepass"), digest_size=8).digest() for i in ids)
    return np.frombuffer(digests, "<u8").astype(np.uint64)


@dataclass
class SortedHashes:
    """The hashes of one shard's ids in ascending order, and the row of each."""

    hashes: np.ndarray      # uint64 [n], ascending
    rows: np.ndarray        # int64 [n]

    @classmethod
    def of(cls, hashes: np.ndarray) -> "SortedHashes":
        order = np.argsort(hashes, kind="stable")
        return cls(hashes[order], order.astype(np.int64))

    def matches(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(at, rows)``: every pair of a position in ``hashes`` and a row of this shard of the same hash."""
        hashes = np.asarray(hashes, np.uint64)
        left = np.searchsorted(self.hashes, hashes, "left")
        count = np.searchsorted(self.hashes, hashes, "right") - left
        at = np.repeat(np.arange(len(hashes)), count)
        first = np.repeat(left - (np.cumsum(count) - count), count)
        return at, self.rows[first + np.arange(len(at))]
