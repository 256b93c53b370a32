"""An index on disk, opened for reading: its shards joined in manifest order.

The layout of the directory (manifest, shards, their metadata and locks) is
:mod:`nagindex.indexdir`'s; this module reads it into one pool of documents
with global rows, and the reading path never writes.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import faiss
import numpy as np

from .codec import SetCodes
from .errors import CodeOutOfRange, IndexStateError
from .idhash import stable_hashes
from .indexdir import SHARD_META, IndexDir, ShardDir, comparable, describe_holder, differences, template_of
from .storage import is_url, local_copy
from .store import CHUNK_ROWS, ORDERED, CodeStore
from .template import Template

DEFAULT_NAME = "nagindex.index"
ENV_VAR = "NAGINDEX_INDEX"


def default_index_path() -> Path:
    """``$NAGINDEX_INDEX``, else ``./nagindex.index``: where build writes and query looks."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_NAME)


@dataclass
class Shard:
    name: str
    dir: ShardDir
    offset: int          # global row of this shard's first document
    meta: dict

    @property
    def path(self) -> Path:
        return self.dir.path

    @property
    def documents(self) -> int:
        return int(self.meta["documents"])

    @cached_property
    def store(self) -> CodeStore:
        return CodeStore(self.dir.codes)

    def vectors(self, flags: int = 0) -> faiss.Index:
        """The shard's FAISS index; a damaged file is one line naming it."""
        try:
            return faiss.read_index(str(self.dir.vectors), flags)
        except RuntimeError as e:
            reason = str(e).strip().splitlines()[-1] if str(e).strip() else "unreadable"
            raise IndexStateError(f"{self.dir.vectors}: damaged FAISS file ({reason}); build this shard again") from None

    @property
    def files(self) -> list[Path]:
        return [Path(f["path"]) for f in self.meta["files"]]

    @cached_property
    def template(self) -> Template | None:
        """What makes a record's text from its fields, as at build time; None: its text field."""
        return template_of(self.meta, self.dir.path / SHARD_META)


class Index:
    """A finished index, opened for reading: its manifest, its shards and their code stores.

    ``Index(path)`` checks that the directory holds a finished index of a
    format this nagindex reads, and raises ``IndexStateError`` naming what is
    missing, unfinished or damaged. Rows are global: shard after shard, in
    corpus order; ``codes_of``, ``ids_of`` and ``tokens`` take and give
    global rows.
    """

    def __init__(self, path: str | os.PathLike):
        # A remote index (a URL) is read through a local copy, fetched again where it changed.
        self.path = local_copy(path) if is_url(path) else Path(path)
        self.dir = IndexDir(self.path)
        if not self.path.exists():
            raise IndexStateError(f"{self.path}: no index here; build one with `nagindex build CORPUS -o {self.path}`")
        manifest = self.dir.read_manifest()
        if manifest is None:
            raise self._not_ready()
        self.manifest = manifest
        self.shards: list[Shard] = []
        offset = 0
        for shard_dir in self.dir.listed(manifest):
            meta = shard_dir.read_meta()
            shard_dir.check_files(meta, self.path)
            changed = differences(comparable(manifest), comparable(meta))
            if changed:
                raise IndexStateError(f"{shard_dir.path}: built with other settings than the manifest records "
                                      f"({'; '.join(changed)}): the index is damaged")
            self.shards.append(Shard(shard_dir.name, shard_dir, offset, meta))
            offset += int(meta["documents"])
        if offset != int(manifest["documents"]):
            raise IndexStateError(f"{self.dir.manifest_path}: lists {manifest['documents']} documents, its shards hold {offset}")

    def _not_ready(self) -> IndexStateError:
        """Why a directory without a manifest is not an index yet, and what to do."""
        writer = self.dir.writer()
        if writer is not None:
            return IndexStateError(f"{self.path}: a build is in progress ({describe_holder(writer)}); "
                                   "query the index once it has finished")
        if [n for n in self.dir.partial_names() if "-of-" not in n]:
            return IndexStateError(f"{self.path}: the build is unfinished; rerun the same `nagindex build` command to resume it")
        parts = self.dir.unlisted_parts(set())
        if parts:
            done = sum(parts.values())
            return IndexStateError(f"{self.path}: holds {done} finished of {len(parts)} parts of a sharded build, "
                                   f"not merged yet; run `nagindex merge {self.path}` once every part is built")
        return IndexStateError(f"{self.path}: not a nagindex index (no {self.dir.manifest_path.name})")

    # -- what the index was built with ---------------------------------------

    @property
    def backbone(self) -> dict:
        return self.manifest["backbone"]

    @property
    def settings(self) -> dict:
        return self.manifest["settings"]

    @property
    def neuron_types(self) -> list[str]:
        return list(self.settings["neuron_types"])

    @property
    def num_layers(self) -> int:
        return int(self.manifest["layers"])

    @property
    def neurons(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.manifest["neurons"].items()}

    @property
    def top_k(self) -> int:
        return int(self.settings["top_k"])

    @property
    def code_layout(self) -> str:
        """How the index keeps each layer's K neurons (docs/design.md §2.1): ``sets``, or ``ordered`` by
        impact, as every index did before layouts were recorded."""
        return self.manifest.get("codes") or ORDERED

    @property
    def documents(self) -> int:
        return int(self.manifest["documents"])

    def __len__(self) -> int:
        return self.documents

    # -- reading ---------------------------------------------------------------

    def iter_codes(self, neuron_type: str, chunk_rows: int = 4 * CHUNK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        """``(global_first_row, codes)`` over all shards, in index order, as uint16 ``[n, L, K]``."""
        for shard in self.shards:
            for start, codes in shard.store.iter_codes(neuron_type, chunk_rows):
                yield shard.offset + start, codes

    def iter_stored(self, neuron_type: str, chunk_rows: int = 4 * CHUNK_ROWS
                    ) -> Iterator[tuple[int, np.ndarray | SetCodes]]:
        """``(global_first_row, rows)`` over all shards, in index order, as each store keeps them: the
        exact scan's input (query.scoring scores both forms)."""
        for shard in self.shards:
            for start, stored in shard.store.iter_stored(neuron_type, chunk_rows):
                yield shard.offset + start, stored

    def _concat(self, fn) -> np.ndarray:
        parts = [fn(s) for s in self.shards]
        return np.concatenate(parts) if parts else np.zeros(0)

    @property
    def total_tokens(self) -> int:
        """The pool's tokens, as the manifest records them: no document's count is read."""
        return int(self.manifest["tokens"])

    @cached_property
    def tokens(self) -> np.ndarray:
        """Every document's token count, 8 bytes a document: for what holds every score anyway;
        a selection reads the counts of the rows it keeps (``tokens_of``)."""
        return self._concat(lambda s: s.store.tokens()).astype(np.int64)

    def tokens_of(self, rows: np.ndarray) -> np.ndarray:
        """Token counts of arbitrary global rows, without reading every count."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty(len(rows), np.int64)
        for shard, mask in self.locate(rows):
            out[mask] = shard.store.tokens_of(rows[mask] - shard.offset)
        return out

    @cached_property
    def ids(self) -> np.ndarray:
        return self._concat(lambda s: s.store.ids()).astype(object)

    def locate(self, rows: np.ndarray) -> list[tuple[Shard, np.ndarray]]:
        """Split global rows by shard: ``[(shard, local_rows_in_input_order_mask)]``."""
        rows = np.asarray(rows, dtype=np.int64)
        starts = np.array([s.offset for s in self.shards], dtype=np.int64)
        which = np.searchsorted(starts, rows, side="right") - 1
        return [(s, which == i) for i, s in enumerate(self.shards) if np.any(which == i)]

    def slot_counts(self, neuron_type: str) -> np.ndarray:
        """``[L, N]``: in how many pool documents' NAGs each slot is."""
        return sum(s.store.slot_counts(neuron_type) for s in self.shards)

    def ids_of(self, rows: np.ndarray) -> np.ndarray:
        """Ids of arbitrary global rows, without reading every id."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty(len(rows), object)
        for shard, mask in self.locate(rows):
            out[mask] = shard.store.ids_of(rows[mask] - shard.offset)
        return out

    @property
    def kept_fields(self) -> list[str]:
        """The numeric corpus fields that every shard kept at build time (``--keep-field``)."""
        names = [set(s.meta.get("fields", ())) for s in self.shards]
        return sorted(set.intersection(*names)) if names else []

    def kept_field(self, name: str) -> np.ndarray | None:
        """The values of a kept field for every document, or None if some shard did not keep it."""
        return self._concat(lambda s: s.store.field(name)) if name in self.kept_fields else None

    def damaged_code(self, error: CodeOutOfRange, neuron_type: str, rows: np.ndarray | None = None) -> IndexStateError:
        """What to tell the user of a code the kernels found out of range, at global row ``error.row``
        or, when they scored the codes of ``rows``, at ``rows[error.row]``."""
        row = error.row if rows is None else int(rows[error.row])
        (shard, _), = self.locate(np.array([row]))
        return shard.store.damaged_code(error, neuron_type, row - shard.offset)

    def codes_of(self, neuron_type: str, rows: np.ndarray) -> np.ndarray:
        """Codes of arbitrary global rows, in the given order (repeats allowed)."""
        rows = np.asarray(rows, dtype=np.int64)
        located = self.locate(rows)
        if len(located) == 1:
            shard, _ = located[0]
            return shard.store.codes_of(neuron_type, rows - shard.offset)
        out = np.empty((len(rows), self.num_layers, self.top_k), np.uint16)
        for shard, mask in located:
            at = np.flatnonzero(mask)
            out[at] = shard.store.codes_of(neuron_type, rows[at] - shard.offset)
        return out

    def stored_of(self, neuron_type: str, rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray | SetCodes]]:
        """The codes of arbitrary global rows as their shards store them: ``[(positions in rows, codes)]``,
        a piece a shard (a sets store's codes hold its own codebook, docs/design.md §2.1)."""
        rows = np.asarray(rows, dtype=np.int64)
        return [(np.flatnonzero(mask), shard.store.stored_of(neuron_type, rows[mask] - shard.offset))
                for shard, mask in self.locate(rows)]

    def close(self) -> None:
        for s in self.shards:
            if "store" in s.__dict__:
                s.store.close()

    def holders(self, ids: list[str]) -> dict[str, str]:
        """Which of ``ids`` the index holds already, each with where: for refusing them in an append.

        Each shard's sorted id hashes are read in turn (nagindex.idhash), so this
        holds one shard's (16 bytes a document of it) besides ``ids``, however
        many shards the index has.
        """
        ids = np.asarray(ids, dtype=object)
        hashes = stable_hashes(ids)
        found: dict[str, str] = {}
        for shard in self.shards:
            at, rows = shard.store.find_ids(ids, hashes)
            for a, row in zip(at, rows):
                found[ids[a]] = f"shard {shard.name} of {self.path} ({source_of(shard.store, shard.meta, int(row))})"
        return found


def source_of(store: CodeStore, meta: dict, row: int) -> str:
    """Where the document at ``row`` of a shard's store was read: its corpus file and offset."""
    files, offsets = store.sources(slice(row, row + 1))
    return f"{meta['files'][int(files[0])]['path']}, offset {int(offsets[0])}"
