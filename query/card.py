"""What a selection is, for the manifest beside its shards: what a data card needs.

A selection trains a model that someone later has to describe: which pool, which
backbone and settings ranked it, for which targets, with which budgets, and
what came out. Everything here is read from the index and the query, nothing
is guessed.
"""
from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata

from .budget import Budget
from .profile import ScoreSpec
from .targets import Targets


def selection_card(selector, selection, targets: Targets, spec: ScoreSpec, budget: Budget, **query) -> dict:
    """The manifest entries of ``selection``, made by ``selector`` for ``targets``.

    ``query``: the other choices of the query worth recording (search, dedup,
    quality field…), stored as given.
    """
    index = selector.index
    examples = {name: len(rows) for name, rows in targets.groups().items()}
    shares = dict(zip((s["target"] for s in selection.summary), selection.budgets))
    return {
        "nagindex": importlib.metadata.version("nagindex"),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "index": {"path": str(index.path.resolve()), "documents": index.documents, "tokens": int(index.tokens.sum())},
        "backbone": index.backbone,
        "settings": index.settings,
        "scoring": dataclasses.asdict(spec),
        # --weighting auto: per target, the weighting chosen and each candidate's held-out score.
        "weighting_choice": selection.weightings or None,
        "budget": budget.describe(),
        "query": query,
        "targets": [{**s, "examples": examples.get(s["target"]),
                     "budget": shares[s["target"]].describe() if s["target"] in shares else None}
                    for s in selection.summary],
        "columns": selection.table.schema.names,
    }
