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
from .store import CodeStore, slot_counts_of
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


def _check_store(shard: ShardDir, meta: dict) -> None:
    with CodeStore(shard.codes) as store:
        if store.rows != int(meta["documents"]):
            raise IndexStateError(f"{shard.codes}: {store.rows} rows, shard.json records {meta['documents']} documents")
        for t, neurons in meta["neurons"].items():
            df = np.zeros((int(meta["layers"]), int(neurons)), np.int64)
            for start, codes in store.iter_codes(t):
                if codes.size and int(codes.max()) >= neurons:
                    row = start + int(np.argmax(codes.reshape(len(codes), -1).max(axis=1) >= neurons))
                    raise IndexStateError(f"{shard.codes}: row {row} holds a {t} code beyond the backbone's "
                                          f"{neurons} neurons")
                df += slot_counts_of(codes, neurons)
            if not np.array_equal(df, store.slot_counts(t)):
                raise IndexStateError(f"{shard.codes}: the slot counts df/{t} differ from a recount of the codes")
        if int(store.tokens().sum()) != int(meta["tokens"]):
            raise IndexStateError(f"{shard.codes}: the token counts do not add up to shard.json's {meta['tokens']}")
        files, _ = store.sources()
        if len(files) and int(files.max()) >= len(meta["files"]):
            raise IndexStateError(f"{shard.codes}: a document names corpus file {int(files.max())}; "
                                  f"shard.json lists {len(meta['files'])}")
        store.read_rows()        # impacts and kept fields, through HDF5's checksums


def _check_vectors(shard: ShardDir, meta: dict) -> None:
    vectors = Shard(shard.name, shard, 0, meta).vectors()
    if vectors.ntotal != int(meta["documents"]):
        raise IndexStateError(f"{shard.vectors}: {vectors.ntotal} vectors for {meta['documents']} documents")


def _check_terms(shard: ShardDir, meta: dict) -> None:
    TermStats(shard.terms).check(int(meta["documents"]))
