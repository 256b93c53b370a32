"""An index over ready-made code stores (nagindex.synthetic's), for tests and benchmarks of search.

Each store becomes one shard, hard-linked into the index, not copied (the
stores of a benchmark run to gigabytes; a hard link keeps the index inside its
own directory, which opening an index demands, where a symbolic link would
not). Vectors, shard metadata and manifest are written as a build writes them; each
shard names one corpus file of its own, which is never read.
Without a FAISS spec the index has no vectors and serves the exact scan alone:
sketching 10^7 documents takes longer than the benchmarks that need that many
spend on what they measure.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from nagindex.indexdir import IndexDir, part_name
from nagindex.sketch import DEFAULT_DIM, DEFAULT_FAISS, Sketch
from nagindex.store import CodeStore
from nagindex.synthetic import NEURON_TYPE, Pool, header
from nagindex.terms import TOKENIZER

from .vectors import build_vectors


def make_index(path: Path, stores: list[Path], pool: Pool, spec: str | None = DEFAULT_FAISS,
               dim: int = DEFAULT_DIM, parts: bool = False, terms: list[Path] | None = None) -> float:
    """An index at ``path`` over ``stores`` (one shard each) with ``spec`` vectors of ``dim``
    dimensions, or none (``spec`` None); returns the seconds spent building the vectors.
    With ``parts`` the shards are the parts of a ``build --shard i/N``, not merged yet (no manifest).
    ``terms``: a ``terms.h5`` per store (nagindex.terms), hard-linked as the stores are."""
    index = IndexDir(path)
    head = {**header(pool, spec, dim), "terms": dict(TOKENIZER) if terms else None}
    metas, seconds = [], 0.0
    with index.lock():
        for i, store_path in enumerate(stores):
            shard = index.shard(part_name(i, len(stores)) if parts else f"{i:05d}")
            shard.path.mkdir(parents=True, exist_ok=True)
            if not shard.codes.exists():
                os.link(store_path, shard.codes)
            if terms and not shard.terms.exists():
                os.link(terms[i], shard.terms)
            with CodeStore(shard.codes) as store:
                t = time.perf_counter()
                if spec is not None:
                    build_vectors(store, NEURON_TYPE, Sketch.from_dict(head["vectors"]["sketch"]), spec, shard.vectors)
                seconds += time.perf_counter() - t
                meta = {"name": shard.name, **head, "documents": store.rows, "tokens": int(store.tokens().sum()),
                        "files": [{"path": f"/synthetic/{shard.name}.jsonl", "bytes": 0, "mtime": 0.0}], "text_field": "text", "id_field": "id", "skipped": 0}
            metas.append(shard.write_meta(meta))
        if not parts:
            index.write_manifest(metas, head)
    return seconds
