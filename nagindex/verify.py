"""``nagindex verify``: read every byte of an index and name whatever is damaged.

Opening an index checks what is cheap (the manifest, each shard's metadata,
each file's size), and reading checks each value read (nagindex.store); only
a full read catches damage to what a query never reads, or reads rarely. This
one checks, shard by shard, and goes on past a damaged shard to the next:

- each stored file's sha256 against the one shard.json recorded when the
  shard was finished;
- every dataset of the code store, read and checked (HDF5's checksums, the
  codes' row checksums, the ids' CRCs), the codes within the backbone's
  neurons and the slot counts equal to a recount of the codes;
- the FAISS file, where the index has vectors: readable, one vector per document;
- the term statistics, where the index keeps them: read whole, one consistent
  matrix of the shard's documents (nagindex.terms).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import IndexStateError
from .index import Shard
from .indexdir import IndexDir, ShardDir
from .idhash import stable_hashes
from .store import CHUNK_ROWS, CodeStore, slot_counts_of
from .terms import TermStats


@dataclass
class VerifyReport:
    index: Path
    shards: int = 0
    documents: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(path: str | os.PathLike) -> VerifyReport:
    """Check everything the index at ``path`` holds; the report lists one line per damaged thing.

    Raises ``IndexStateError`` only where there is no index to check (no
    manifest, or one that cannot be read).
    """
    index = IndexDir(path)
    if not index.path.is_dir():
        raise IndexStateError(f"{index.path}: no index here")
    manifest = index.read_manifest()
    if manifest is None:
        raise IndexStateError(f"{index.path}: not a finished index (no {index.manifest_path.name}); nothing to verify")
    report = VerifyReport(index.path)
    for shard in index.listed(manifest):
        report.shards += 1
        try:
            meta = shard.read_meta()
            shard.check_files(meta, index.path)
        except IndexStateError as e:
            report.problems.append(str(e))
            continue
        report.documents += int(meta["documents"])
        report.problems += shard.damaged_files(meta)
        checks = [_check_store] + [_check_vectors] * (meta["vectors"] is not None) + [_check_terms] * bool(meta.get("terms"))
        for check in checks:
            try:
                check(shard, meta)
            except IndexStateError as e:
                report.problems.append(str(e))
    if not report.problems and report.documents != int(manifest["documents"]):
        report.problems.append(f"{index.manifest_path}: lists {manifest['documents']} documents, "
                               f"its shards hold {report.documents}")
    return report


def _check_store(shard: ShardDir, meta: dict, chunk_rows: int = CHUNK_ROWS) -> None:
    """Read every row of the store, a chunk at a time: its memory is one chunk's, not the shard's (the
    slot recount of a chunk takes 10 KB a row)."""
    with CodeStore(shard.codes) as store:
        if store.rows != int(meta["documents"]):
            raise IndexStateError(f"{shard.codes}: {store.rows} rows, shard.json records {meta['documents']} documents")
        neurons = {t: int(n) for t, n in meta["neurons"].items()}
        df = {t: np.zeros((int(meta["layers"]), n), np.int64) for t, n in neurons.items()}
        tokens, id_hashes = 0, np.uint64(0)
        for start in range(0, store.rows, chunk_rows):
            rows = store.read_rows(start, start + chunk_rows)   # every column, through its checksums
            for t, n in neurons.items():
                codes = rows.codes[t]
                if codes.size and int(codes.max()) >= n:
                    row = start + int(np.argmax(codes.reshape(len(codes), -1).max(axis=1) >= n))
                    raise IndexStateError(f"{shard.codes}: row {row} holds a {t} code beyond the backbone's {n} neurons")
                df[t] += slot_counts_of(codes, n)
            if len(rows) and int(rows.source_file.max()) >= len(meta["files"]):
                raise IndexStateError(f"{shard.codes}: a document names corpus file {int(rows.source_file.max())}; "
                                      f"shard.json lists {len(meta['files'])}")
            tokens += int(rows.tokens.sum())
            id_hashes += stable_hashes(rows.ids).sum(dtype=np.uint64)
        for t in neurons:
            if not np.array_equal(df[t], store.slot_counts(t)):
                raise IndexStateError(f"{shard.codes}: the slot counts df/{t} differ from a recount of the codes")
        if tokens != int(meta["tokens"]):
            raise IndexStateError(f"{shard.codes}: the token counts do not add up to shard.json's {meta['tokens']}")
        by_hash = store.id_hashes()
        if by_hash.hashes.sum(dtype=np.uint64) != id_hashes or np.any(by_hash.hashes[1:] < by_hash.hashes[:-1]) \
                or not np.array_equal(np.bincount(by_hash.rows, minlength=store.rows), np.ones(store.rows, np.int64)):
            raise IndexStateError(f"{shard.codes}: the sorted id hashes (id_hashes) are not those of its ids")


def _check_vectors(shard: ShardDir, meta: dict) -> None:
    vectors = Shard(shard.name, shard, 0, meta).vectors()
    if vectors.ntotal != int(meta["documents"]):
        raise IndexStateError(f"{shard.vectors}: {vectors.ntotal} vectors for {meta['documents']} documents")


def _check_terms(shard: ShardDir, meta: dict) -> None:
    TermStats(shard.terms).check(int(meta["documents"]))
