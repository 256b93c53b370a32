"""An index on disk: a directory of shards joined by a manifest.

::

    my.index/
      manifest.json          format, backbone, settings, totals, the shards
      shards/00000/          one complete piece of the pool
        shard.json           its corpus files (size, mtime), documents, tokens
        codes.h5             the code store (see nagindex.store)
        vectors.faiss        one fixed-length vector per document (nagindex.sketch)
      shards/00001.partial/  a build or append in progress (resumable)

A shard is complete once its directory has lost the ``.partial`` suffix, and
part of the index once the manifest lists it; both steps are atomic renames,
so a reader sees either the old index or the new one, never half of either.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .atomic import write_json
from .errors import CodeOutOfRange, IndexStateError
from .store import CHUNK_ROWS, CodeStore

FORMAT = "nagindex"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARD_META = "shard.json"
CODES = "codes.h5"
VECTORS = "vectors.faiss"
PARTIAL = ".partial"
HEADER = ("backbone", "dtype", "settings", "layers", "neurons", "vectors")
DEFAULT_NAME = "nagindex.index"
ENV_VAR = "NAGINDEX_INDEX"


def default_index_path() -> Path:
    """``$NAGINDEX_INDEX``, else ``./nagindex.index``: where build writes and query looks."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_NAME)


def shards_dir(path: Path) -> Path:
    return Path(path) / "shards"


def part_name(i: int, n: int) -> str:
    """The shard directory of part ``i`` of ``n``, as ``build --shard i/N`` names it."""
    return f"{i:05d}-of-{n:05d}"


@dataclass
class Shard:
    name: str
    path: Path
    offset: int          # global row of this shard's first document
    meta: dict

    @property
    def documents(self) -> int:
        return int(self.meta["documents"])

    @cached_property
    def store(self) -> CodeStore:
        return CodeStore(self.path / CODES)

    @property
    def files(self) -> list[Path]:
        return [Path(f["path"]) for f in self.meta["files"]]


def read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise IndexStateError(f"{path}: missing {what}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexStateError(f"{path}: damaged {what} ({e})") from None


def write_manifest(path: Path, manifest: dict) -> None:
    write_json(Path(path) / MANIFEST, manifest)


def header_of(meta: dict) -> dict:
    """What every shard of an index shares for its codes to be comparable, from a manifest or shard.json."""
    return {key: meta.get(key) for key in HEADER}


def comparable(meta: dict) -> dict:
    """The header of a manifest or shard.json as indexes compare it: the backbone by its weights'
    hash alone, as its name and path only say where the weights were found."""
    header = header_of(meta)
    if isinstance(header.get("backbone"), dict):
        header["backbone"] = {k: v for k, v in header["backbone"].items() if k not in ("name", "path")}
    return header


def manifest_for(shards_meta: list[dict], header: dict) -> dict:
    """A manifest joining shards built with the same ``header`` (backbone, settings)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **header,
        "documents": sum(int(s["documents"]) for s in shards_meta),
        "tokens": sum(int(s["tokens"]) for s in shards_meta),
        "shards": [{"name": s["name"], "documents": s["documents"], "tokens": s["tokens"]} for s in shards_meta],
    }


class Index:
    """A finished index, opened for reading: its manifest, its shards and their code stores.

    ``Index(path)`` checks that the directory holds a finished index of a
    format this nagindex reads, and raises ``IndexStateError`` naming what is
    missing, unfinished or damaged. Rows are global: shard after shard, in
    corpus order; ``codes_of``, ``ids_of`` and ``tokens`` take and give
    global rows.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise IndexStateError(f"{self.path}: no index here; build one with `nagindex build CORPUS -o {self.path}`")
        manifest_path = self.path / MANIFEST
        if not manifest_path.exists():
            if any(shards_dir(self.path).glob(f"*{PARTIAL}")):
                raise IndexStateError(f"{self.path}: the build is unfinished; rerun the same `nagindex build` command to resume it")
            raise IndexStateError(f"{self.path}: not a nagindex index (no {MANIFEST})")
        self.manifest = read_json(manifest_path, "manifest")
        if self.manifest.get("format") != FORMAT or self.manifest.get("format_version") != FORMAT_VERSION:
            raise IndexStateError(
                f"{manifest_path}: format {self.manifest.get('format')!r} version "
                f"{self.manifest.get('format_version')!r}; this nagindex reads {FORMAT!r} version {FORMAT_VERSION}")
        self.shards: list[Shard] = []
        offset = 0
        for entry in self.manifest["shards"]:
            spath = shards_dir(self.path) / entry["name"]
            meta = read_json(spath / SHARD_META, "shard metadata")
            for name in (CODES, VECTORS):
                if not (spath / name).is_file():
                    raise IndexStateError(f"{spath}: damaged shard, {name} is missing")
            self.shards.append(Shard(entry["name"], spath, offset, meta))
            offset += int(meta["documents"])
        if offset != int(self.manifest["documents"]):
            raise IndexStateError(f"{manifest_path}: lists {self.manifest['documents']} documents, its shards hold {offset}")

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
    def documents(self) -> int:
        return int(self.manifest["documents"])

    def __len__(self) -> int:
        return self.documents

    # -- reading ---------------------------------------------------------------

    def iter_codes(self, neuron_type: str, chunk_rows: int = 4 * CHUNK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        """``(global_first_row, codes)`` over all shards, in index order."""
        for shard in self.shards:
            for start, codes in shard.store.iter_codes(neuron_type, chunk_rows):
                yield shard.offset + start, codes

    def _concat(self, fn) -> np.ndarray:
        parts = [fn(s) for s in self.shards]
        return np.concatenate(parts) if parts else np.zeros(0)

    @cached_property
    def tokens(self) -> np.ndarray:
        return self._concat(lambda s: s.store.tokens()).astype(np.int64)

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

    def close(self) -> None:
        for s in self.shards:
            if "store" in s.__dict__:
                s.store.close()


class KnownIds(dict):
    """The ids seen so far by the corpus reader (its ``seen_ids``), starting with an index's own.

    For ``--append``: the index's ids are held as hashes (``CodeStore.id_hashes``)
    with their order, 16 bytes a document, and a hash found is confirmed by the
    id itself. The corpus's new ids are held as the reader holds them, in the
    dict, with where each was first seen.
    """

    def __init__(self, index: Index, where: str):
        super().__init__()
        hashes = np.concatenate([np.zeros(0, np.int64), *(s.store.id_hashes() for s in index.shards)])
        self._order = np.argsort(hashes, kind="stable")
        self._hashes = hashes[self._order]
        self._index, self._where = index, where

    def get(self, doc_id: str, default=None):
        if doc_id in self:
            return self[doc_id]
        h = hash(doc_id)
        at = int(np.searchsorted(self._hashes, h))
        while at < len(self._hashes) and self._hashes[at] == h:
            if self._index.ids_of(self._order[at:at + 1])[0] == doc_id:
                return self._where
            at += 1
        return default
