"""nagindex: target-oriented pretraining data selection with Neuron-Activated Graphs.

The Python API in one place (docs/design.md §7)::

    from nagindex import build, BuildOptions, Selector, Budget, ScoreSpec, read_targets

    build("corpus/", "my.index")                                  # once per pool
    sel = Selector("my.index")                                    # per task
    result = sel.select(read_targets("targets.jsonl"), Budget(fraction=0.2))

The names are loaded on first use: the core modules of this package are
imported by the build and query paths, which these names come from, so
importing them here eagerly would import each path into the other.
"""
from __future__ import annotations

import importlib

_API = {
    "build": "indexer.build",
    "BuildOptions": "indexer.options",
    "BuildReport": "indexer.build",
    "merge": "indexer.merge",
    "Index": "nagindex.index",
    "ExtractSettings": "nagindex.settings",
    "Template": "nagindex.template",
    "Selector": "query.selector",
    "Selection": "query.selector",
    "Budget": "query.budget",
    "ScoreSpec": "query.profile",
    "Profiles": "query.profile",
    "Targets": "query.targets",
    "read_targets": "query.targets",
    "write_selection": "query.output",
    "NagindexError": "nagindex.errors",
    "InputError": "nagindex.errors",
    "IndexStateError": "nagindex.errors",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'nagindex' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
