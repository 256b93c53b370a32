"""How much to select: a number of documents, of tokens, or a share of the pool.

Sizes take the suffixes users write in training configs: ``500K``, ``1M``,
``2B``, ``1.5T`` (powers of 1000).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from nagindex.errors import NagindexError

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}


def parse_size(text: str | int, what: str = "size") -> int:
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmbgt]?)\s*", str(text).lower())
    if not m:
        raise NagindexError(f"{what} {text!r}: write a number with an optional K, M, B or T suffix (e.g. 500K, 1M, 2B)")
    value = float(m[1]) * _SUFFIX[m[2]]
    if value < 1:
        raise NagindexError(f"{what} {text!r}: must be at least 1")
    return int(value)


@dataclass(frozen=True)
class Budget:
    """Exactly one of documents, tokens or fraction (of the pool's tokens)."""

    documents: int | None = None
    tokens: int | None = None
    fraction: float | None = None

    def __post_init__(self):
        given = [v is not None for v in (self.documents, self.tokens, self.fraction)]
        if sum(given) != 1:
            raise NagindexError("give exactly one budget: -k DOCS, --tokens N or --fraction F")
        if self.fraction is not None and not 0 < self.fraction <= 1:
            raise NagindexError(f"--fraction {self.fraction}: must be in (0, 1]")

    def split(self, weights: list[float], pool_tokens: int) -> list["Budget"]:
        """Per-target budgets: the paper's mixture gives each of M targets 1/M (or its weight).

        The shares add up to the whole budget: each target gets the whole part
        of its share, and what the rounding leaves goes one by one to the
        targets with the largest fractions (ties to the earlier target), so
        ``-k 5`` over two targets is 3 and 2 documents. A share can be 0
        documents when there are more targets than documents.
        """
        if self.documents is not None:
            return [Budget(documents=n) for n in apportion(self.documents, weights)]
        tokens = self.tokens if self.tokens is not None else int(self.fraction * pool_tokens)
        return [Budget(tokens=max(1, n)) for n in apportion(tokens, weights)]

    def describe(self) -> str:
        if self.documents is not None:
            return f"{self.documents:,} documents"
        if self.tokens is not None:
            return f"{self.tokens:,} tokens"
        return f"{self.fraction:g} of the pool's tokens"


def apportion(total: int, weights: list[float]) -> list[int]:
    """``total`` split in proportion to ``weights`` into integers that sum to it (largest remainders)."""
    w = np.asarray(weights, dtype=np.float64)
    exact = total * w / w.sum()
    whole = np.floor(exact).astype(np.int64)
    left = int(total - whole.sum())
    whole[np.argsort(-(exact - whole), kind="stable")[:left]] += 1
    return whole.tolist()
