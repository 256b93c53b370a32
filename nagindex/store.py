"""The HDF5 code store: one file per shard holding every document's NAG.

Layout of ``codes.h5`` (all datasets have one row per document, in corpus order):

``codes/<type>``    uint16 ``[n, L, K]``: per layer, the K most impactful neuron
                    ids in descending impact order, so any K' <= K and any
                    subset of layers can be used at query time.
``impacts/<type>``  float16 ``[n, L, K]``, optional: the impacts themselves.
``ids``             utf-8 strings: the document ids.
``tokens``          int64: each document's full token count (not truncated).
``source_file``     uint32: index into the shard's list of corpus files.
``source_offset``   int64: byte offset of the record in its (decompressed)
                    file for JSONL and text, row number for Parquet.
``text_hash``       uint64: a hash of each document's text
                    (``nagindex.corpus.text_hashes``), to check that a text
                    fetched back from the corpus is the one indexed; absent
                    from stores written before it was recorded.
``df/<type>``       int64 ``[L, N]``: in how many documents' NAGs each
                    (layer, neuron) slot is; pool statistics for query-time
                    weightings, computed once when the shard is finished.
``fields/<name>``   float64, optional: a numeric corpus field kept at build
                    time (``--keep-field``), NaN where a record has no number.

Rows are chunked along the document axis so that a scan reads whole chunks,
and stored without filters, so that single rows can be read through a memory
map of the file (``CodeStore.codes_of``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

import h5py
import numpy as np

from .errors import CodeOutOfRange, IndexStateError

CHUNK_ROWS = 4096
STR = h5py.string_dtype("utf-8")


@dataclass
class Rows:
    """A block of documents with their NAGs, as extraction produces them."""

    ids: list[str]
    tokens: np.ndarray                      # int64 [n]
    source_file: np.ndarray                 # uint32 [n]
    source_offset: np.ndarray               # int64 [n]
    codes: dict[str, np.ndarray]            # type -> uint16 [n, L, K]
    impacts: dict[str, np.ndarray] = field(default_factory=dict)  # type -> float16
    fields: dict[str, np.ndarray] = field(default_factory=dict)   # name -> float64
    text_hash: np.ndarray | None = None     # uint64 [n]

    def __len__(self) -> int:
        return len(self.ids)


def write_rows(path: str | Path, rows: Rows) -> None:
    """Write ``rows`` as a complete store at ``path`` (callers rename it into place)."""
    n = len(rows)
    with h5py.File(path, "w") as f:
        _create(f, "ids", np.asarray(rows.ids, dtype=object), STR)
        _create(f, "tokens", rows.tokens.astype(np.int64))
        _create(f, "source_file", rows.source_file.astype(np.uint32))
        _create(f, "source_offset", rows.source_offset.astype(np.int64))
        if rows.text_hash is not None:
            _create(f, "text_hash", rows.text_hash.astype(np.uint64))
        for t, c in rows.codes.items():
            _create(f, f"codes/{t}", c.astype(np.uint16, copy=False))
        for t, v in rows.impacts.items():
            _create(f, f"impacts/{t}", v.astype(np.float16, copy=False))
        for name, v in rows.fields.items():
            _create(f, f"fields/{name}", v.astype(np.float64, copy=False))
        f.attrs["rows"] = n


def concat_stores(parts: list[str | Path], path: str | Path) -> int:
    """Copy the part stores, in order, into one store at ``path``; return its rows."""
    sizes = []
    for p in parts:
        with h5py.File(p, "r") as f:
            sizes.append(int(f.attrs["rows"]))
    n = sum(sizes)
    with h5py.File(parts[0], "r") as first, h5py.File(path, "w") as out:
        names = []
        first.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        for name in names:
            src = first[name]
            out.create_dataset(name, shape=(n, *src.shape[1:]), dtype=src.dtype,
                               chunks=_chunks(n, src.shape[1:]) if n else None)
        start = 0
        for p, size in zip(parts, sizes):
            with h5py.File(p, "r") as f:
                for name in names:
                    out[name][start:start + size] = f[name][...]
            start += size
        out.attrs["rows"] = n
    return n


def add_slot_counts(path: str | Path, neurons: Mapping[str, int], chunk_rows: int = 65536) -> None:
    """Count, per type, how many documents hold each (layer, neuron) slot."""
    with h5py.File(path, "r+") as f:
        for t, n in neurons.items():
            codes = f[f"codes/{t}"]
            L = codes.shape[1]
            offsets = (np.arange(L, dtype=np.int64) * n)[None, :, None]
            df = np.zeros(L * n, np.int64)
            for start in range(0, codes.shape[0], chunk_rows):
                block = codes[start:start + chunk_rows].astype(np.int64) + offsets
                df += np.bincount(block.ravel(), minlength=L * n)
            f.create_dataset(f"df/{t}", data=df.reshape(L, n))


class CodeStore:
    """Read access to one shard's ``codes.h5``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._f = h5py.File(self.path, "r")
        self.rows = int(self._f.attrs["rows"])
        self._mapped: dict[str, list[np.ndarray] | None] = {}

    def close(self) -> None:
        self._mapped.clear()
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def types(self) -> list[str]:
        return list(self._f["codes"].keys()) if "codes" in self._f else []

    @property
    def has_impacts(self) -> bool:
        return "impacts" in self._f

    def codes(self, neuron_type: str) -> h5py.Dataset:
        return self._f[f"codes/{neuron_type}"]

    def impacts(self, neuron_type: str) -> h5py.Dataset:
        return self._f[f"impacts/{neuron_type}"]

    def codes_of(self, neuron_type: str, rows: np.ndarray) -> np.ndarray:
        """``codes[rows]`` for any rows (unsorted, repeated).

        Approximate search reads a few rows from nearly every chunk of a large
        shard; through the memory map each row costs its own pages (1.2 KB)
        instead of its chunk (4.9 MB).
        """
        chunks = self._chunks_mapped(neuron_type)
        if chunks is None:
            return take_rows(self.codes(neuron_type), rows)
        rows = np.asarray(rows, dtype=np.int64)
        per = len(chunks[0])
        out = np.empty((len(rows), *chunks[0].shape[1:]), chunks[0].dtype)
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        blocks, starts = np.unique(ordered // per, return_index=True)
        for b, start, end in zip(blocks, starts, [*starts[1:], len(rows)]):
            out[order[start:end]] = chunks[b][ordered[start:end] - b * per]
        return out

    def _chunks_mapped(self, neuron_type: str) -> list[np.ndarray] | None:
        """Each chunk of ``codes/<type>``, in row order, as an array over a memory map of the file;
        None where the dataset is filtered (compressed) or not fully written, or the file has a user
        block (chunk addresses then start after it): its bytes are not read in place."""
        if neuron_type not in self._mapped:
            ds = self.codes(neuron_type)
            per = ds.chunks[0] if ds.chunks else 0
            chunk_bytes = per * int(np.prod(ds.shape[1:])) * ds.dtype.itemsize
            chunks = [None] * (-(-self.rows // per) if per else 0)
            in_place = self._f.userblock_size == 0 and ds.id.get_create_plist().get_nfilters() == 0
            if chunks and in_place and ds.id.get_num_chunks() == len(chunks):
                file = np.memmap(self.path, dtype=np.uint8, mode="r")
                for i in range(len(chunks)):
                    info = ds.id.get_chunk_info(i)
                    if info.byte_offset is not None and info.size == chunk_bytes:
                        chunks[info.chunk_offset[0] // per] = np.ndarray((per, *ds.shape[1:]), ds.dtype, file,
                                                                         info.byte_offset)
            self._mapped[neuron_type] = chunks if chunks and all(c is not None for c in chunks) else None
        return self._mapped[neuron_type]

    def slot_counts(self, neuron_type: str) -> np.ndarray:
        return self._f[f"df/{neuron_type}"][...]

    def field(self, name: str) -> np.ndarray | None:
        """A corpus field kept at build time, or None if this shard did not keep it."""
        return self._f[f"fields/{name}"][...] if f"fields/{name}" in self._f else None

    def ids(self, rows=slice(None)) -> np.ndarray:
        return self._f["ids"].asstr()[rows]

    def ids_of(self, rows: np.ndarray) -> np.ndarray:
        return take_rows(self._f["ids"].asstr(), rows)

    def damaged_code(self, error: CodeOutOfRange, neuron_type: str, row: int) -> IndexStateError:
        """What to tell the user of a code the kernels found out of range at ``row`` of this store."""
        return IndexStateError(f"{self.path}: document {self.ids_of(np.array([row]))[0]!r} (row {row}) holds "
                               f"{neuron_type} code {error.code}, beyond the backbone's {error.neurons} neurons: "
                               "the file is damaged; build this shard again")

    def id_hashes(self, chunk_rows: int = 1 << 16) -> np.ndarray:
        """A 64-bit hash of every id, in row order, for telling whether ids repeat.

        8 bytes a document, where the ids as Python strings take about a hundred
        (over 10 GB for 10^8). Python salts ``hash`` per process: compare hashes
        computed in one process only, and confirm a shared hash by the ids.
        """
        out = np.empty(self.rows, np.int64)
        for at in range(0, self.rows, chunk_rows):
            got = self.ids(slice(at, at + chunk_rows))
            out[at:at + len(got)] = np.fromiter(map(hash, got), np.int64, len(got))
        return out

    def tokens(self) -> np.ndarray:
        return self._f["tokens"][...]

    def text_hashes(self, rows: np.ndarray) -> np.ndarray | None:
        """The text hashes of ``rows``, or None for a store written before they were recorded."""
        return take_rows(self._f["text_hash"], rows) if "text_hash" in self._f else None

    def sources(self) -> tuple[np.ndarray, np.ndarray]:
        return self._f["source_file"][...], self._f["source_offset"][...]

    def iter_codes(self, neuron_type: str, chunk_rows: int = 4 * CHUNK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_row, codes[first_row:first_row+chunk])`` over the whole store.

        The default chunk (20 MB of codes) stays under glibc's mmap threshold, so
        read buffers are reused instead of being mapped and faulted in afresh.
        """
        ds = self.codes(neuron_type)
        for start in range(0, self.rows, chunk_rows):
            yield start, ds[start:start + chunk_rows]


def take_rows(ds: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """``ds[rows]`` for any rows (unsorted, repeated), reading whole chunks.

    HDF5 point selections are slow and demand sorted unique indices; reading
    each touched chunk once and picking rows in memory is both fast and general.
    Strings are the exception: decoding a whole chunk of them costs more than
    selecting the few wanted (5x for ids of a few rows per chunk).
    """
    rows = np.asarray(rows, dtype=np.int64)
    uniq, inverse = np.unique(rows, return_inverse=True)
    blocks = uniq // CHUNK_ROWS
    strings = ds.dtype.kind == "O"
    pieces = []
    for b in np.unique(blocks):
        first = int(b) * CHUNK_ROWS
        wanted = uniq[blocks == b]
        if strings and len(wanted) < CHUNK_ROWS // 4:
            pieces.append(np.asarray(ds[wanted], dtype=object))
        else:
            pieces.append(ds[first:first + CHUNK_ROWS][wanted - first])
    return np.concatenate(pieces)[inverse] if pieces else ds[0:0]


def _chunks(n: int, tail: tuple[int, ...]) -> tuple[int, ...]:
    return (max(1, min(n, CHUNK_ROWS)), *tail)


def _create(f: h5py.File, name: str, data: np.ndarray, dtype=None) -> None:
    n = len(data)
    f.create_dataset(name, data=data, dtype=dtype or data.dtype,
                     chunks=_chunks(n, data.shape[1:]) if n else None)
