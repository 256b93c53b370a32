"""Stable 64-bit hashes of document ids, and a shard's ids sorted by them: duplicate ids found in O(one shard).

An index refuses an id held twice (a build, an append, a merge). Holding
every id of a pool to check that grows with it (a hundred bytes an id as a
Python string, 8 as Python's ``hash``, which is salted per process and so
cannot be stored). Each shard's store instead keeps the blake2b-64 hash of
each of its ids, sorted, with the row each came from (nagindex.store,
datasets ``id_hashes`` and ``id_hash_rows``); a check reads one shard's
array at a time, or two shards' a block at a time (``shared_rows``), and
confirms every hash it finds shared by comparing the ids themselves, so a
collision never refuses a valid id (docs/design.md §5.1, §5.2).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, Iterator

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


Blocks = Iterable[tuple[np.ndarray, np.ndarray]]


def shared_rows(a: Blocks, b: Blocks) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(rows_a, rows_b)`` a batch at a time: every pair of a row of ``a`` and a row of ``b`` of the same hash.

    ``a`` and ``b`` are two shards' ``(hashes, rows)`` in ascending hash order,
    cut into blocks anywhere (``CodeStore.iter_id_hashes``). A merge compares
    its parts two at a time, and holding two whole arrays grew its memory with
    the shard size (16 bytes a document of each); joining them a block at a
    time holds about a block of each, plus the rows of a hash repeated beyond
    it (docs/design.md §5.2). A hash is joined only once it is below the last
    one read of each side still being read, since a later block can repeat it.
    """
    sides = [_Side(iter(a)), _Side(iter(b))]
    while True:
        for side in sides:
            side.fill()
        if any(not len(side.hashes) for side in sides):
            return
        reading = [side.hashes[-1] for side in sides if side.more]
        bound = min(reading) if reading else None
        (ha, ra), (hb, rb) = (side.take(bound) for side in sides)
        at, rows_b = SortedHashes(hb, rb).matches(ha)
        if len(at):
            yield ra[at], rows_b
        for side in sides:
            if side.more and side.hashes[-1] == bound:
                side.extend()


class _Side:
    """One side of ``shared_rows``: the hashes and rows read and not yet joined."""

    def __init__(self, blocks: Iterator[tuple[np.ndarray, np.ndarray]]):
        self.blocks, self.more = blocks, True
        self.hashes, self.rows = np.zeros(0, np.uint64), np.zeros(0, np.int64)

    def fill(self) -> None:
        while self.more and not len(self.hashes):
            self.extend()

    def extend(self) -> None:
        block = next(self.blocks, None)
        if block is None:
            self.more = False
            return
        self.hashes = np.concatenate([self.hashes, np.asarray(block[0], np.uint64)])
        self.rows = np.concatenate([self.rows, np.asarray(block[1], np.int64)])

    def take(self, bound) -> tuple[np.ndarray, np.ndarray]:
        """The hashes below ``bound`` (all, for None) and their rows, kept no longer."""
        cut = len(self.hashes) if bound is None else int(np.searchsorted(self.hashes, bound, "left"))
        taken = self.hashes[:cut], self.rows[:cut]
        self.hashes, self.rows = self.hashes[cut:], self.rows[cut:]
        return taken
