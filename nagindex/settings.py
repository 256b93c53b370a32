"""The settings that make a NAG: kept apart from torch so that reading them is cheap."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .neurons import DEFAULT_TYPE

DEFAULT_TOP_K = 20
DEFAULT_MAX_LENGTH = 120

#: The weightings a query can score with (docs/design.md §4): named here, in the core, so that the
#: CLI offers them without importing the query path that implements them.
WEIGHTINGS = ("paper", "idf", "classifier")
#: What a selection may name: one of them, ``bm25`` over an index's term statistics (§2.4), or ``auto``,
#: chosen per task from its examples (§1.3).
SELECTION_WEIGHTINGS = ("auto", *WEIGHTINGS, "bm25")


def cache_dir() -> Path:
    """Dequantized backbones and target NAGs: ``$NAGINDEX_CACHE``, default ``~/.cache/nagindex``."""
    return Path(os.environ.get("NAGINDEX_CACHE") or Path.home() / ".cache" / "nagindex")


@dataclass(frozen=True)
class ExtractSettings:
    """Everything that changes the NAG of a text; recorded in the manifest."""

    neuron_types: tuple[str, ...] = (DEFAULT_TYPE,)
    top_k: int = DEFAULT_TOP_K
    max_length: int = DEFAULT_MAX_LENGTH

    def as_dict(self) -> dict:
        return {"neuron_types": list(self.neuron_types), "top_k": self.top_k, "max_length": self.max_length}

    @classmethod
    def from_dict(cls, d: dict) -> "ExtractSettings":
        return cls(tuple(d["neuron_types"]), int(d["top_k"]), int(d["max_length"]))
