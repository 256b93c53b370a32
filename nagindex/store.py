"""The HDF5 code store: one file per shard holding every document's NAG, checked on every read.

Layout of ``codes.h5`` (all datasets have one row per document, in corpus order):

``sets/<type>/...``  the ``sets`` layout (nagindex.codec, docs/design.md §2.1):
                      ``bits`` uint64 ``[n, L]``, per layer a bitset over its
                      codebook's neurons (``common`` uint16 ``[L, C]``), and the
                      other ids listed in ``rest`` (uint16), where every
                      ``STRIDE``-th row's list begins in ``rest_at`` (int64).
                      Every query uses all K of a layer's ids.
``codes/<type>``      the ``ordered`` layout, uint16 ``[n, L, K]``: per layer, the
                      K most impactful neuron ids in descending impact order, so
                      any K' <= K can be used at query time.
``checksums/<type>``  uint32: a checksum of each document's stored code words (below).
``impacts/<type>``    float16 ``[n, L, K]``, optional: the impacts themselves, in the
                      order the codes are read back.
``ids``               utf-8 strings: the document ids.
``checksums/ids``     uint32: the CRC-32 of each id's utf-8 bytes.
``id_hashes``         uint64: the blake2b-64 hash of every id (nagindex.idhash),
                      ascending, not in row order; ``id_hash_rows`` uint32: the
                      row of each. For refusing duplicate ids one shard at a
                      time; absent from stores written before them (computed
                      from the ids when read).
``tokens``            int64: each document's full token count (not truncated).
``source_file``       uint32: index into the shard's list of corpus files.
``source_offset``     int64: byte offset of the record in its (decompressed)
                      file for JSONL and text, row number for Parquet.
``text_hash``         uint64: a hash of each document's text
                      (``nagindex.corpus.text_hashes``), to check that a text
                      fetched back from the corpus is the one indexed; absent
                      from stores written before it was recorded.
``df/<type>``         int64 ``[L, N]``: in how many documents' NAGs each
                      (layer, neuron) slot is; pool statistics for query-time
                      weightings, computed when the store is written.
``fields/<name>``     float64, optional: a numeric corpus field kept at build
                      time (``--keep-field``), NaN where a record has no number.

Rows are chunked along the document axis so that a scan reads whole chunks.

Checks. A flipped bit must not silently change a ranking, so every value read
is checked, by one of two means:

- HDF5's ``fletcher32`` filter on every fixed-size dataset but the codes:
  HDF5 checks each chunk as it reads it.
- The codes stay unfiltered, because single rows are read through a memory
  map of the file (``CodeStore.codes_of``: 1.2 KB a row instead of its 4.9 MB
  chunk), which a filter would rule out. Each row has its own checksum
  instead, ``sum_j c_j * w_j mod 2**32`` over its code words ``c_j`` (its
  uint16 ids; in a sets store its bits as four uint16 words a layer, then its
  listed ids) with fixed odd weights ``w_j``: any change of a single code changes it (``w_j`` is odd), a
  swap of two codes almost surely does, and it runs at memory speed (8 GB/s on
  one core), so the streaming scan checks every row it scores and
  ``codes_of`` the rows it returns. A row-level checksum also catches codes
  that are intact but in the wrong place.
- Ids are variable-length strings, which HDF5 cannot filter: their CRC-32s are
  stored beside them and checked where ids are read.

What these miss (damage to HDF5's own structures that still decodes, or to
the FAISS file) the whole-file sha256 in shard.json catches, checked by
``nagindex verify`` (see nagindex.indexdir and nagindex.verify). Every error
reading a store is an ``IndexStateError`` of one line naming the file.
"""
from __future__ import annotations

import contextlib
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

import h5py
import numpy as np
from numba import njit

from .codec import Codebook, SetCodes, Undecodable, checksum_weights, set_checksums_as_read
from .errors import CodeOutOfRange, IndexStateError
from .heap import map_large_buffers
from .idhash import SortedHashes, stable_hashes

CHUNK_ROWS = 4096
# HDF5's caches per open store, raw chunks and metadata: reads take whole chunks themselves
# (``take_rows``, ``iter_codes``), and an index holds every shard open, so a cache per store
# is memory per shard.
READ_CACHE = 1 << 18
STR = h5py.string_dtype("utf-8")
REQUIRED = ("ids", "tokens", "source_file", "source_offset", "checksums/ids")
SETS, ORDERED = "sets", "ordered"   # how a store keeps each layer's K ids (docs/design.md §2.1)
STRIDE = 16            # rows between the recorded starts of their lists, in a sets store
REST_CHUNK = 1 << 16   # listed ids a chunk, in a sets store


@njit(nogil=True, cache=True)
def _row_checksums(codes, weights):
    n, m = codes.shape
    out = np.empty(n, np.uint32)
    for i in range(n):
        h = np.uint32(0)
        for j in range(m):
            h += np.uint32(codes[i, j]) * weights[j]
        out[i] = h
    return out


def row_checksums(codes: np.ndarray) -> np.ndarray:
    """uint32 ``[n]``: the checksum of each row of ``codes`` ``[n, ...]`` (see the module's docstring)."""
    flat = np.ascontiguousarray(codes).reshape(len(codes), int(np.prod(codes.shape[1:])))
    return _row_checksums(flat, checksum_weights(flat.shape[1]))


def id_checksums(ids) -> np.ndarray:
    return np.fromiter((zlib.crc32(i.encode("utf-8", "surrogatepass")) for i in ids), np.uint32, len(ids))


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


class StoreWriter:
    """Writes a store of ``n`` rows block by block, with its checksums and, given ``neurons``
    (``type -> N``), its slot counts; callers write to a temporary path and rename it into place.

    ``layout`` is how each layer's K ids are kept: ``"sets"`` (docs/design.md §2.1; it needs
    ``neurons``, and blocks written in row order) or ``"ordered"``, uint16 in impact order. A sets
    store's codebook of each type is ``codebooks``' or, by default, that of its first block's counts.
    """

    def __init__(self, path: str | Path, n: int, neurons: Mapping[str, int] | None = None, layout: str = ORDERED,
                 codebooks: Mapping[str, Codebook] | None = None):
        if layout not in (SETS, ORDERED):
            raise ValueError(f"layout must be {SETS!r} or {ORDERED!r}, got {layout!r}")
        self.n, self.neurons, self.layout = n, dict(neurons or {}), layout
        # No chunk cache: each block goes to disk as it is written, so a full disk fails that write, cleanly.
        # HDF5 left to flush cached chunks when a dataset is closed crashes the process where that fails;
        # the codes' chunks are larger than its default cache anyway.
        self._f = h5py.File(path, "w", rdcc_nbytes=0)
        self._df: dict[str, np.ndarray] = {}
        self._id_hashes = np.zeros(n, np.uint64)
        self._codebooks = dict(codebooks or {})
        self._rest_at: dict[str, np.ndarray] = {}
        self._written = 0

    def write(self, start: int, rows: Rows) -> None:
        if self.layout == SETS and start != self._written:
            raise ValueError(f"a sets store is written in row order: block at row {start}, expected {self._written}")
        self._id_hashes[start:start + len(rows)] = stable_hashes(rows.ids)
        columns = {"ids": np.asarray(rows.ids, dtype=object), "checksums/ids": id_checksums(rows.ids),
                   "tokens": rows.tokens.astype(np.int64), "source_file": rows.source_file.astype(np.uint32),
                   "source_offset": rows.source_offset.astype(np.int64)}
        impacts = {t: v.astype(np.float16, copy=False) for t, v in rows.impacts.items()}
        for t, c in rows.codes.items():
            codes = c.astype(np.uint16, copy=False)
            if t in self.neurons:
                self._count(t, codes)
            if self.layout == ORDERED:
                columns[f"codes/{t}"] = codes
                columns[f"checksums/{t}"] = row_checksums(codes)
                continue
            sets, order = self._encode(t, codes)
            self._append_rest(t, start, sets)
            columns[f"sets/{t}/bits"] = sets.bits
            columns[f"checksums/{t}"] = sets.checksums()
            if t in impacts:
                impacts[t] = np.take_along_axis(impacts[t], order, axis=2)
        if rows.text_hash is not None:
            columns["text_hash"] = rows.text_hash.astype(np.uint64)
        columns.update({f"impacts/{t}": v for t, v in impacts.items()})
        columns.update({f"fields/{name}": v.astype(np.float64, copy=False) for name, v in rows.fields.items()})
        for name, data in columns.items():
            if name not in self._f:
                self._create(name, data)
            self._f[name][start:start + len(data)] = data
        if self.layout == SETS and rows.codes:
            self._f.attrs["top_k"] = next(iter(rows.codes.values())).shape[2]
        self._written = start + len(rows)

    def _encode(self, neuron_type: str, codes: np.ndarray) -> tuple[SetCodes, np.ndarray]:
        if neuron_type not in self.neurons:
            raise ValueError(f"a sets store needs the number of {neuron_type} neurons")
        neurons = self.neurons[neuron_type]
        book = self._codebooks.setdefault(neuron_type, Codebook.of_counts(slot_counts_of(codes, neurons)))
        bits, rest, order = book.encode(codes, neurons)
        return SetCodes.of(bits, rest, book, codes.shape[2]), order

    def _append_rest(self, neuron_type: str, start: int, sets: SetCodes) -> None:
        """Append the block's listed ids, recording where every ``STRIDE``-th row's begin."""
        name = f"sets/{neuron_type}/rest"
        if name not in self._f:
            self._f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=np.uint16, chunks=(REST_CHUNK,))
            self._rest_at[neuron_type] = np.zeros(-(-self.n // STRIDE) + 1, np.int64)
        ds = self._f[name]
        at = ds.shape[0]
        rows = np.arange(start, start + len(sets))
        first = rows % STRIDE == 0
        self._rest_at[neuron_type][rows[first] // STRIDE] = at + sets.starts[:-1][first]
        ds.resize((at + len(sets.rest),))
        ds[at:] = sets.rest
        self._rest_at[neuron_type][-1] = at + len(sets.rest)

    def _create(self, name: str, data: np.ndarray) -> None:
        tail = data.shape[1:]
        strings = data.dtype == object
        in_place = name.startswith("codes/") or name.endswith("/bits")
        self._f.create_dataset(name, shape=(self.n, *tail), dtype=STR if strings else data.dtype,
                               chunks=(max(1, min(self.n, CHUNK_ROWS)), *tail) if self.n else None,
                               fletcher32=bool(self.n) and not (strings or in_place))

    def _count(self, neuron_type: str, codes: np.ndarray) -> None:
        self._df[neuron_type] = self._df.get(neuron_type, 0) + slot_counts_of(codes, self.neurons[neuron_type])

    def close(self) -> None:
        for t, df in self._df.items():
            self._f.create_dataset(f"df/{t}", data=df, fletcher32=True, chunks=df.shape)
        for t, rest_at in self._rest_at.items():
            self._f.create_dataset(f"sets/{t}/rest_at", data=rest_at, fletcher32=True,
                                   chunks=(min(len(rest_at), CHUNK_ROWS),))
            common = self._codebooks[t].common
            self._f.create_dataset(f"sets/{t}/common", data=common, fletcher32=True, chunks=common.shape)
        by_hash = SortedHashes.of(self._id_hashes)
        for name, data in (("id_hashes", by_hash.hashes), ("id_hash_rows", by_hash.rows.astype(np.uint32))):
            self._create(name, data)
            if self.n:
                self._f[name][...] = data
        self._f.attrs["rows"] = self.n
        self._f.close()

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._f.close()


def slot_counts_of(codes: np.ndarray, neurons: int) -> np.ndarray:
    """int64 ``[L, neurons]``: in how many of these documents' NAGs each (layer, neuron) slot is."""
    L = codes.shape[1]
    slots = codes.astype(np.int64) + (np.arange(L, dtype=np.int64) * neurons)[None, :, None]
    return np.bincount(slots.ravel(), minlength=L * neurons).reshape(L, neurons)


def write_rows(path: str | Path, rows: Rows, neurons: Mapping[str, int] | None = None, layout: str = ORDERED) -> None:
    """Write ``rows`` as a complete store at ``path`` (callers rename it into place)."""
    with StoreWriter(path, len(rows), neurons, layout) as out:
        out.write(0, rows)


def concat_stores(parts: list[str | Path], path: str | Path, neurons: Mapping[str, int], layout: str = ORDERED) -> int:
    """Copy the part stores, in order and checked, into one store at ``path`` of that ``layout``; return its rows."""
    stores = [CodeStore(p) for p in parts]
    try:
        n = sum(s.rows for s in stores)
        with StoreWriter(path, n, neurons, layout) as out:
            start = 0
            for store in stores:
                for at in range(0, store.rows, 4 * CHUNK_ROWS):
                    out.write(start + at, store.read_rows(at, at + 4 * CHUNK_ROWS))
                start += store.rows
    finally:
        for store in stores:
            store.close()
    return n


class CodeStore:
    """Read access to one shard's ``codes.h5``, every value checked (``verify=False`` only to
    measure what the checks cost, in tools.bench_query)."""

    def __init__(self, path: str | Path, verify: bool = True):
        self.path = Path(path)
        self.verify = verify
        try:
            self._f = h5py.File(self.path, "r", rdcc_nbytes=READ_CACHE)
            _bound_metadata_cache(self._f)
        except (OSError, ValueError) as e:
            raise IndexStateError(f"{self.path}: not a readable code store ({_reason(e)}); "
                                  "the file is damaged: build this shard again") from None
        with self._reading("its layout"):
            self.rows = int(self._f.attrs["rows"])
            self.layout = SETS if "sets" in self._f else ORDERED
            per_type = ("checksums/{}",) + (("sets/{}/bits", "sets/{}/rest", "sets/{}/rest_at", "sets/{}/common")
                                             if self.layout == SETS else ())
            missing = [name for name in (*REQUIRED, *(f.format(t) for t in self.types for f in per_type))
                       if name not in self._f]
            if missing or not self.types:
                raise IndexStateError(f"{self.path}: damaged code store, no dataset {(missing or ['codes'])[0]!r}; "
                                      "build this shard again")
        self._mapped: dict[str, list[np.ndarray] | None] = {}
        self._codebooks: dict[str, Codebook] = {}

    @contextlib.contextmanager
    def _reading(self, what: str):
        """Any failure to read ``what`` (a filter's checksum, a damaged structure) as one line naming the file."""
        try:
            yield
        except (OSError, KeyError, ValueError, RuntimeError) as e:
            raise IndexStateError(f"{self.path}: cannot read {what} ({_reason(e)}): the file is damaged; "
                                  "build this shard again") from None

    def close(self) -> None:
        self._mapped.clear()
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def types(self) -> list[str]:
        group = "sets" if "sets" in self._f else "codes"
        return list(self._f[group].keys()) if group in self._f else []

    @property
    def has_impacts(self) -> bool:
        return "impacts" in self._f

    def code_shape(self, neuron_type: str) -> tuple[int, int, int]:
        """``(documents, L, K)`` of the codes of ``neuron_type``."""
        with self._reading(f"the {neuron_type} codes"):
            if self.layout == ORDERED:
                return tuple(self._f[f"codes/{neuron_type}"].shape)
            return self.rows, self._f[f"sets/{neuron_type}/bits"].shape[1], int(self._f.attrs["top_k"])

    def impacts(self, neuron_type: str) -> h5py.Dataset:
        return self._f[f"impacts/{neuron_type}"]

    def codebook(self, neuron_type: str) -> Codebook:
        """The neurons that have a bit in each layer of a sets store (nagindex.codec)."""
        if neuron_type not in self._codebooks:
            with self._reading(f"sets/{neuron_type}/common"):
                self._codebooks[neuron_type] = Codebook(self._f[f"sets/{neuron_type}/common"][...])
        return self._codebooks[neuron_type]

    def read_codes(self, neuron_type: str, start: int, stop: int) -> np.ndarray:
        """``codes[start:stop]``, checked: uint16 ``[n, L, K]``, decoded from a sets store."""
        stop = min(stop, self.rows)
        if self.layout == SETS:
            first = start - start % STRIDE
            return self.read_stored(neuron_type, first, stop).decoded()[start - first:]
        with self._reading(f"codes/{neuron_type} rows {start}..{stop}"):
            codes = self._f[f"codes/{neuron_type}"][start:stop]
            if self.verify:
                self._check(neuron_type, np.arange(start, start + len(codes)), row_checksums(codes),
                            self._f[f"checksums/{neuron_type}"][start:stop])
        return codes

    def read_stored(self, neuron_type: str, start: int, stop: int) -> np.ndarray | SetCodes:
        """Rows ``start:stop`` as stored, checked: what the exact scan scores. ``start`` is a multiple of
        ``STRIDE`` in a sets store."""
        if self.layout == ORDERED:
            return self.read_codes(neuron_type, start, stop)
        stop = min(stop, self.rows)
        whole = min(-(-stop // STRIDE) * STRIDE, self.rows)   # lists are found by runs of STRIDE rows
        name = f"sets/{neuron_type}"
        with self._reading(f"{name} rows {start}..{stop}"):
            ends = self._f[f"{name}/rest_at"][[start // STRIDE, -(-whole // STRIDE)]]
            bits = self._f[f"{name}/bits"][start:whole]
            rest = self._f[f"{name}/rest"][ends[0]:ends[1]]
        rows = np.arange(start, whole)
        sets = self._sets(neuron_type, rows, bits, rest)
        if self.verify:
            with self._reading(f"checksums/{neuron_type}"):
                self._check(neuron_type, rows, sets.checksums(), self._f[f"checksums/{neuron_type}"][start:whole])
        return sets.head(stop - start)

    def _sets(self, neuron_type: str, rows: np.ndarray, bits: np.ndarray, rest: np.ndarray) -> SetCodes:
        """``SetCodes`` of whole runs of rows, or the user's message naming the first row that cannot be one.

        A flipped bit shifts every later row's list, so the rows' checksums, read with the lists as
        they fall, name the damaged one."""
        try:
            return SetCodes.of(bits, rest, self.codebook(neuron_type), self.code_shape(neuron_type)[2])
        except Undecodable as e:
            at = e.row
            with self._reading(f"checksums/{neuron_type}"):
                stored = take_rows(self._f[f"checksums/{neuron_type}"], rows)
            self._check(neuron_type, rows, set_checksums_as_read(bits, rest, self.code_shape(neuron_type)[2]), stored)
            row = int(rows[at])
            raise IndexStateError(f"{self.path}: the {neuron_type} codes of document {self.ids_of(np.array([row]))[0]!r} "
                                  f"(row {row}) cannot be decoded: the file is damaged; build this shard again") from None

    def _check(self, neuron_type: str, rows: np.ndarray, sums: np.ndarray, stored: np.ndarray) -> None:
        bad = np.flatnonzero(sums != stored)
        if len(bad):
            row = int(rows[bad[0]])
            raise IndexStateError(f"{self.path}: the {neuron_type} codes of document {self.ids_of(np.array([row]))[0]!r} "
                                  f"(row {row}{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}) do not match "
                                  "their checksum: the file is damaged; build this shard again")

    def codes_of(self, neuron_type: str, rows: np.ndarray) -> np.ndarray:
        """``codes[rows]`` for any rows (unsorted, repeated), checked.

        Approximate search reads a few rows from nearly every chunk of a large
        shard; through the memory map each row costs its own pages (1.2 KB, or
        a sets store's run of ``STRIDE`` rows) instead of its chunk (4.9 MB).
        """
        rows = np.asarray(rows, dtype=np.int64)
        if self.layout == SETS:
            return self._set_rows(neuron_type, rows).decoded()
        name = f"codes/{neuron_type}"
        with self._reading(name):
            out = self._take(name, rows)
            if self.verify:
                self._check(neuron_type, rows, row_checksums(out), take_rows(self._f[f"checksums/{neuron_type}"], rows))
        return out

    def stored_of(self, neuron_type: str, rows: np.ndarray) -> np.ndarray | SetCodes:
        """``codes_of`` as stored, for scoring exactly as the scan scores (approximate search re-scores
        its candidates so)."""
        rows = np.asarray(rows, dtype=np.int64)
        return self._set_rows(neuron_type, rows) if self.layout == SETS else self.codes_of(neuron_type, rows)

    def _set_rows(self, neuron_type: str, rows: np.ndarray) -> SetCodes:
        """Rows of a sets store: every run of ``STRIDE`` rows that holds one is read and checked."""
        name = f"sets/{neuron_type}"
        runs, where = np.unique(rows // STRIDE, return_inverse=True)
        with self._reading(f"{name} rows"):
            ends = take_rows(self._f[f"{name}/rest_at"], np.concatenate([runs, runs + 1]))
            firsts = runs * STRIDE
            sizes = np.minimum(firsts + STRIDE, self.rows) - firsts
            held = np.repeat(firsts - np.cumsum(sizes) + sizes, sizes) + np.arange(int(sizes.sum()))
            bits = self._take(f"{name}/bits", held)
            rest = np.concatenate([self._span(f"{name}/rest", a, b) for a, b in zip(ends[:len(runs)], ends[len(runs):])]
                                  or [np.zeros(0, np.uint16)])
        sets = self._sets(neuron_type, held, bits, rest)
        if self.verify:
            with self._reading(f"checksums/{neuron_type}"):
                self._check(neuron_type, held, sets.checksums(), take_rows(self._f[f"checksums/{neuron_type}"], held))
        return sets.take((np.cumsum(sizes) - sizes)[where] + rows - runs[where] * STRIDE)

    def _take(self, name: str, rows: np.ndarray) -> np.ndarray:
        """``ds[rows]`` of an unfiltered dataset, through the memory map where it can be read in place."""
        chunks = self._chunks_mapped(name)
        if chunks is None:
            return take_rows(self._f[name], rows)
        per = len(chunks[0])
        out = np.empty((len(rows), *chunks[0].shape[1:]), chunks[0].dtype)
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        blocks, starts = np.unique(ordered // per, return_index=True)
        for b, start, end in zip(blocks, starts, [*starts[1:], len(rows)]):
            out[order[start:end]] = chunks[b][ordered[start:end] - b * per]
        return out

    def _span(self, name: str, start: int, stop: int) -> np.ndarray:
        """``ds[start:stop]`` of an unfiltered 1-D dataset, through the memory map where it can be read in place."""
        chunks = self._chunks_mapped(name)
        if chunks is None or start >= stop:
            return self._f[name][start:stop]
        per = len(chunks[0])
        pieces = [chunks[b][max(start - b * per, 0):stop - b * per] for b in range(start // per, (stop - 1) // per + 1)]
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def _chunks_mapped(self, name: str) -> list[np.ndarray] | None:
        """Each chunk of dataset ``name``, in row order, as an array over a memory map of the file;
        None where the dataset is filtered (compressed) or not fully written, or the file has a user
        block (chunk addresses then start after it): its bytes are not read in place."""
        if name not in self._mapped:
            ds = self._f[name]
            per = ds.chunks[0] if ds.chunks else 0
            chunk_bytes = per * int(np.prod(ds.shape[1:])) * ds.dtype.itemsize
            chunks = [None] * (-(-ds.shape[0] // per) if per else 0)
            in_place = self._f.userblock_size == 0 and ds.id.get_create_plist().get_nfilters() == 0
            if chunks and in_place and ds.id.get_num_chunks() == len(chunks):
                file = np.memmap(self.path, dtype=np.uint8, mode="r")
                for i in range(len(chunks)):
                    info = ds.id.get_chunk_info(i)
                    if info.byte_offset is not None and info.size == chunk_bytes \
                            and info.byte_offset + chunk_bytes <= len(file):
                        chunks[info.chunk_offset[0] // per] = np.ndarray((per, *ds.shape[1:]), ds.dtype, file,
                                                                         info.byte_offset)
            self._mapped[name] = chunks if chunks and all(c is not None for c in chunks) else None
        return self._mapped[name]

    def slot_counts(self, neuron_type: str) -> np.ndarray:
        with self._reading(f"df/{neuron_type}"):
            return self._f[f"df/{neuron_type}"][...]

    def field(self, name: str) -> np.ndarray | None:
        """A corpus field kept at build time, or None if this shard did not keep it."""
        with self._reading(f"fields/{name}"):
            return self._f[f"fields/{name}"][...] if f"fields/{name}" in self._f else None

    def ids(self, rows: slice = slice(None)) -> np.ndarray:
        """Ids of a slice of rows, checked."""
        with self._reading("ids"):
            ids = self._f["ids"].asstr()[rows]
            sums = self._f["checksums/ids"][rows]
        self._check_ids(np.arange(*rows.indices(self.rows)), ids, sums)
        return ids

    def ids_of(self, rows: np.ndarray) -> np.ndarray:
        """Ids of any rows (unsorted, repeated), checked."""
        rows = np.asarray(rows, dtype=np.int64)
        with self._reading("ids"):
            ids = take_rows(self._f["ids"].asstr(), rows)
            sums = take_rows(self._f["checksums/ids"], rows)
        self._check_ids(rows, ids, sums)
        return ids

    def _check_ids(self, rows: np.ndarray, ids: np.ndarray, stored: np.ndarray) -> None:
        if not self.verify:
            return
        bad = np.flatnonzero(id_checksums(ids) != stored)
        if len(bad):
            raise IndexStateError(f"{self.path}: the id at row {int(rows[bad[0]])} ({ids[bad[0]]!r}) does not match "
                                  "its checksum: the file is damaged; build this shard again")

    def damaged_code(self, error: CodeOutOfRange, neuron_type: str, row: int) -> IndexStateError:
        """What to tell the user of a code the kernels found out of range at ``row`` of this store."""
        return IndexStateError(f"{self.path}: document {self.ids_of(np.array([row]))[0]!r} (row {row}) holds "
                               f"{neuron_type} code {error.code}, beyond the backbone's {error.neurons} neurons: "
                               "the file is damaged; build this shard again")

    def id_hashes(self, chunk_rows: int = 1 << 16) -> SortedHashes:
        """The stable hashes of this store's ids, sorted (16 bytes a document of this shard): as stored,
        or computed from the ids, a chunk at a time, for a store written before they were."""
        if "id_hashes" in self._f:
            with self._reading("id_hashes"):
                return SortedHashes(self._f["id_hashes"][...], self._f["id_hash_rows"][...].astype(np.int64))
        hashes = np.empty(self.rows, np.uint64)
        for at in range(0, self.rows, chunk_rows):
            hashes[at:at + chunk_rows] = stable_hashes(self.ids(slice(at, at + chunk_rows)))
        return SortedHashes.of(hashes)

    def iter_id_hashes(self, block: int = 1 << 16) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``id_hashes`` as ``(hashes, rows)`` blocks of ``block`` entries, in the same order: read a block at
        a time, so that a merge holds a block of each part it compares (``idhash.shared_rows``); a store
        written before they were has them computed whole (``id_hashes``)."""
        if "id_hashes" not in self._f:
            whole = self.id_hashes()
            for at in range(0, self.rows, block):
                yield whole.hashes[at:at + block], whole.rows[at:at + block]
            return
        for at in range(0, self.rows, block):
            with self._reading("id_hashes"):
                hashes = self._f["id_hashes"][at:at + block]
                rows = self._f["id_hash_rows"][at:at + block].astype(np.int64)
            yield hashes, rows

    def find_ids(self, ids: np.ndarray, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(at, rows)``: which of ``ids`` (with their ``stable_hashes``) this store holds, and where."""
        at, rows = self.id_hashes().matches(hashes)
        same = self.ids_of(rows) == np.asarray(ids, dtype=object)[at] if len(at) else np.zeros(0, bool)
        return at[same], rows[same]

    def tokens(self) -> np.ndarray:
        with self._reading("tokens"):
            return self._f["tokens"][...]

    def tokens_of(self, rows: np.ndarray) -> np.ndarray:
        """Token counts of any rows (unsorted, repeated), reading only the chunks that hold them."""
        with self._reading("tokens"):
            return take_rows(self._f["tokens"], rows)

    def text_hashes(self, rows: np.ndarray) -> np.ndarray | None:
        """The text hashes of ``rows``, or None for a store written before they were recorded."""
        with self._reading("text_hash"):
            return take_rows(self._f["text_hash"], rows) if "text_hash" in self._f else None

    def sources(self, rows: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """The corpus file (its place in shard.json's list) and offset of each of ``rows``."""
        with self._reading("source_file and source_offset"):
            return self._f["source_file"][rows], self._f["source_offset"][rows]

    def stored_bytes(self) -> dict[str, int]:
        """Bytes on disk of each top-level dataset or group (``codes``, ``ids``, ``df`` ...)."""
        sizes: dict[str, int] = {}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                top = name.split("/")[0]
                sizes[top] = sizes.get(top, 0) + obj.id.get_storage_size()

        with self._reading("its layout"):
            self._f.visititems(visit)
        return sizes

    def read_rows(self, start: int = 0, stop: int | None = None) -> Rows:
        """Rows ``start:stop`` (default: all), checked, as the build wrote them."""
        stop = self.rows if stop is None else min(stop, self.rows)
        part = slice(start, stop)
        with self._reading("the rows' columns"):
            impacts = {t: self._f[f"impacts/{t}"][part] for t in self._f.get("impacts", {})}
            fields = {name: self._f[f"fields/{name}"][part] for name in self._f.get("fields", {})}
            columns = {name: self._f[name][part] for name in ("tokens", "source_file", "source_offset", "text_hash")
                       if name in self._f}
        return Rows(ids=list(self.ids(part)), tokens=columns["tokens"], source_file=columns["source_file"],
                    source_offset=columns["source_offset"], codes={t: self.read_codes(t, start, stop) for t in self.types},
                    impacts=impacts, fields=fields, text_hash=columns.get("text_hash"))

    def iter_codes(self, neuron_type: str, chunk_rows: int = 4 * CHUNK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_row, codes[first_row:first_row+chunk])`` over the whole store, checked, as uint16."""
        for start, stored in self.iter_stored(neuron_type, chunk_rows):
            yield start, stored if isinstance(stored, np.ndarray) else stored.decoded()

    def iter_stored(self, neuron_type: str, chunk_rows: int = 4 * CHUNK_ROWS
                    ) -> Iterator[tuple[int, np.ndarray | SetCodes]]:
        """Yield ``(first_row, rows)`` over the whole store, checked, as stored: what the exact scan scores.

        Chunks (20 MB of ordered codes by default) are mapped from the system and
        given back when freed (``map_large_buffers``), so what a scan leaves behind
        does not add up shard after shard.
        """
        if chunk_rows % STRIDE:
            raise ValueError(f"chunk_rows must be a multiple of {STRIDE}, got {chunk_rows}")
        map_large_buffers()
        for start in range(0, self.rows, chunk_rows):
            yield start, self.read_stored(neuron_type, start, start + chunk_rows)


def _bound_metadata_cache(f: h5py.File) -> None:
    """Keep HDF5's metadata cache of ``f`` to ``READ_CACHE``.

    An index holds every shard's store open, and reading the ids of rows spread
    over a shard grows its file's cache (the heap blocks of the strings) to
    several MB by default: several MB a shard, so a query's memory grew with the
    pool (measured in tools.bench_pool_memory, docs/figures.md).
    """
    config = f.id.get_mdc_config()
    config.set_initial_size, config.initial_size = True, READ_CACHE
    config.min_size, config.max_size = min(config.min_size, READ_CACHE), READ_CACHE
    f.id.set_mdc_config(config)


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


def _reason(e: BaseException) -> str:
    """The gist of an h5py error: its last line, without HDF5's call stack."""
    text = str(e).strip().splitlines()
    return text[-1] if text else type(e).__name__
