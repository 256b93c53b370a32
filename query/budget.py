"""How much to select: a number of documents, of tokens, or a share of the pool.

Sizes take the suffixes users write in training configs: ``500K``, ``1M``,
``2B``, ``1.5T`` (powers of 1000).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

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
        """Per-target budgets: the paper's mixture gives each of M targets 1/M (or its weight)."""
        total = sum(weights)
        if self.documents is not None:
            return [Budget(documents=max(1, round(self.documents * w / total))) for w in weights]
        tokens = self.tokens if self.tokens is not None else self.fraction * pool_tokens
        return [Budget(tokens=max(1, int(tokens * w / total))) for w in weights]

    def describe(self) -> str:
        if self.documents is not None:
            return f"{self.documents:,} documents"
        if self.tokens is not None:
            return f"{self.tokens:,} tokens"
        return f"{self.fraction:g} of the pool's tokens"
